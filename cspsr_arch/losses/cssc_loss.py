"""L_CSSC: the cross-spectral spatial consistency loss (registered as ``CrossSpectralSpatialConsistencyLoss``)."""
from typing import Optional

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.warp import occlusion_mask, upscale_disparity, warp_to_left, warp_to_right


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over the pixels where ``mask`` is 1 (all channels).

    Args:
        values (Tensor): (n, c, h, w).
        mask (Tensor): (n, 1, h, w) in {0, 1}.

    Returns:
        Tensor: Scalar; 0 when the mask is empty.
    """
    weight = mask.expand_as(values)
    return (values * weight).sum() / weight.sum().clamp(min=1.0)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the pixels where ``mask`` is 1 (see :func:`masked_mean`)."""
    return masked_mean((pred - target)**2, mask)


@LOSS_REGISTRY.register()
class CrossSpectralSpatialConsistencyLoss(nn.Module):
    """``L_CSSC = MSE(NIR_SR_l, warp(NIR_HR_r, disp_l)) + MSE(NIR_HR_r, warp(NIR_SR_l, disp_r))``.

    The super-resolved NIR is in the left (VIS) view, the HR NIR ground truth in the right view. The
    first term brings the ground truth to the left view, the second brings the prediction back to the
    right view. Disparities come in LR pixels and are scaled to the HR size here. Each term averages
    over pixels whose warp lands inside the image; with ``occlusion_threshold`` set, also over pixels
    that pass the left-right consistency check (occluded pixels have no counterpart to compare with).

    Args:
        loss_weight (float): Weight lambda of the loss. Default: 0.1 (the paper's).
        occlusion_threshold (float | None): Left-right consistency tolerance in HR pixels; None keeps
            occluded pixels. Default: 1.0.
    """

    def __init__(self, loss_weight: float = 0.1, occlusion_threshold: Optional[float] = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.occlusion_threshold = occlusion_threshold

    def forward(self, nir_sr: Tensor, gt_nir: Tensor, disp_l: Tensor, disp_r: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            nir_sr (Tensor): Super-resolved NIR, left view, (n, 1, H, W).
            gt_nir (Tensor): HR NIR ground truth, right view, (n, 1, H, W).
            disp_l (Tensor): Left disparity (n, 1, h, w) in pixels of width w (LR or HR).
            disp_r (Tensor): Right disparity (n, 1, h, w) in pixels of width w.

        Returns:
            Tensor: ``loss_weight * L_CSSC``.
        """
        if disp_l is None or disp_r is None:
            raise ValueError('CrossSpectralSpatialConsistencyLoss needs both the left and the right disparity; '
                             'give the data set dataroot_disp and dataroot_disp_r, or remove cssc_opt.')
        if nir_sr.shape != gt_nir.shape:
            raise ValueError(f'NIR_SR {tuple(nir_sr.shape)} and NIR ground truth {tuple(gt_nir.shape)} differ.')
        size = tuple(nir_sr.shape[-2:])
        disp_l, disp_r = upscale_disparity(disp_l, size), upscale_disparity(disp_r, size)
        gt_left, valid_left = warp_to_left(gt_nir, disp_l)
        sr_right, valid_right = warp_to_right(nir_sr, disp_r)
        if self.occlusion_threshold is not None:
            with torch.no_grad():
                valid_left = valid_left * occlusion_mask(disp_l, disp_r, self.occlusion_threshold)
                # right pixels occluded in the left view: the same check with the roles of the views swapped
                disp_l_at_right, inside = warp_to_right(disp_l, disp_r)
                valid_right = valid_right * inside * (
                    (disp_r - disp_l_at_right).abs() <= self.occlusion_threshold).to(disp_r.dtype)
        loss = masked_mse(nir_sr, gt_left, valid_left) + masked_mse(gt_nir, sr_right, valid_right)
        return self.loss_weight * loss
