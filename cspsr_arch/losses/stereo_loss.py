"""Unsupervised cross-spectral stereo loss (registered as ``UnsupervisedStereoLoss``)."""
from typing import Dict

import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.warp import warp_to_left, warp_to_right
from cspsr_arch.losses.cssc_loss import masked_mean


def ssim_map(x: Tensor, y: Tensor) -> Tensor:
    """Per-pixel SSIM of two images in [0, 1] over 3x3 windows (reflection padded), (n, c, h, w)."""
    c1, c2 = 0.01**2, 0.03**2
    x, y = F.pad(x, (1, 1, 1, 1), mode='reflect'), F.pad(y, (1, 1, 1, 1), mode='reflect')
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    var_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    var_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    cov = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def edge_aware_smoothness(disp: Tensor, image: Tensor, edge_scale: float) -> Tensor:
    """Mean of ``|grad disp| * exp(-edge_scale * |grad image|)`` over x and y (disparity may jump at edges)."""
    grad_disp_x = (disp[..., :, 1:] - disp[..., :, :-1]).abs()
    grad_disp_y = (disp[..., 1:, :] - disp[..., :-1, :]).abs()
    grad_img_x = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=1, keepdim=True)
    grad_img_y = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=1, keepdim=True)
    return ((grad_disp_x * torch.exp(-edge_scale * grad_img_x)).mean() +
            (grad_disp_y * torch.exp(-edge_scale * grad_img_y)).mean())


@LOSS_REGISTRY.register()
class UnsupervisedStereoLoss(nn.Module):
    """Disparity training without labels, as in Zhi et al. and Monodepth (Godard et al., CVPR 2017).

    With ``P`` the pseudo-NIR of the left VIS view and ``N`` the right NIR view:

    * view reconstruction: ``rho(warp_to_left(N, d_l), P) + rho(warp_to_right(P, d_r), N)`` with
      ``rho = ssim_weight * (1 - SSIM) / 2 + (1 - ssim_weight) * L1``, averaged where the warp lands
      inside the image (it trains the disparity and the spectral translation together);
    * left-right consistency: ``|d_l - warp_to_left(d_r, d_l)| + |d_r - warp_to_right(d_l, d_r)|``;
    * edge-aware smoothness of ``d_l`` (edges of ``P``) and ``d_r`` (edges of ``N``).

    Disparity terms are in pixels of the input, so their weights depend on its resolution; the
    defaults suit LR inputs (disparities up to a few tens of pixels).

    Args:
        loss_weight (float): Weight of the whole loss. Default: 1.0.
        ssim_weight (float): Share of the SSIM term in ``rho``. Default: 0.85.
        lr_weight (float): Weight of the left-right consistency. Default: 0.02.
        smooth_weight (float): Weight of the smoothness. Default: 0.02.
        edge_scale (float): How strongly image edges relax the smoothness. Default: 10.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 ssim_weight: float = 0.85,
                 lr_weight: float = 0.02,
                 smooth_weight: float = 0.02,
                 edge_scale: float = 10.0) -> None:
        super().__init__()
        self.loss_weight, self.ssim_weight = loss_weight, ssim_weight
        self.lr_weight, self.smooth_weight, self.edge_scale = lr_weight, smooth_weight, edge_scale

    def photometric(self, pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        """``rho(pred, target)`` averaged over the valid pixels."""
        error = (self.ssim_weight * (1 - ssim_map(pred, target)).clamp(0, 2) / 2 +
                 (1 - self.ssim_weight) * (pred - target).abs())
        return masked_mean(error, valid)

    def terms(self, pseudo_nir: Tensor, nir: Tensor, disp_l: Tensor, disp_r: Tensor) -> Dict[str, Tensor]:
        """The unweighted terms ``l_rec``, ``l_lr``, ``l_smooth`` (for logging).

        Args:
            pseudo_nir (Tensor): Pseudo-NIR of the left view (n, 1, h, w).
            nir (Tensor): Right NIR (n, 1, h, w).
            disp_l (Tensor): Left disparity (n, 1, h, w) in pixels of this size.
            disp_r (Tensor): Right disparity (n, 1, h, w).
        """
        nir_at_left, valid_l = warp_to_left(nir, disp_l)
        pseudo_at_right, valid_r = warp_to_right(pseudo_nir, disp_r)
        rec = self.photometric(nir_at_left, pseudo_nir, valid_l) + self.photometric(pseudo_at_right, nir, valid_r)
        disp_r_at_left, _ = warp_to_left(disp_r, disp_l)
        disp_l_at_right, _ = warp_to_right(disp_l, disp_r)
        consistency = (masked_mean((disp_l - disp_r_at_left).abs(), valid_l) +
                       masked_mean((disp_r - disp_l_at_right).abs(), valid_r))
        smooth = (edge_aware_smoothness(disp_l, pseudo_nir, self.edge_scale) +
                  edge_aware_smoothness(disp_r, nir, self.edge_scale))
        return {'l_rec': rec, 'l_lr': consistency, 'l_smooth': smooth}

    def forward(self, pseudo_nir: Tensor, nir: Tensor, disp_l: Tensor, disp_r: Tensor) -> Tensor:
        """Weighted loss (see :meth:`terms` for the arguments)."""
        t = self.terms(pseudo_nir, nir, disp_l, disp_r)
        return self.loss_weight * (t['l_rec'] + self.lr_weight * t['l_lr'] + self.smooth_weight * t['l_smooth'])
