"""Cross-spectral stereo network (registered as ``CrossSpectralStereoNet``): CSPSR's learned CVM.

In the spirit of Zhi et al. (CVPR 2018, "Deep material-aware cross-spectral stereo matching"): a
spectral-translation net renders a pseudo-NIR image from the VIS view, and a disparity net matches it
against the real NIR view. It is trained without disparity labels (view reconstruction, left-right
consistency, edge-aware smoothness: :class:`~cspsr_arch.losses.stereo_loss.UnsupervisedStereoLoss`),
on its own with ``CrossSpectralStereoModel`` and then inside CSPSR (``cvm: learned``).

Our disparity net differs from Zhi et al.'s DispNet-like regressor: it builds a correlation cost
volume over the integer disparities ``min_disp..max_disp`` from shared, unit-normalised features of the
two NIR-like images, refines it with a few dilated 2D convolutions and reads the disparity out with a
soft-argmin (sub-pixel, differentiable). That keeps it small (docs/design_notes.md), cheap at LR sizes, and
lets gradients of CSPSR's losses reach it. The right disparity comes from the same net run on the
horizontally flipped pair with the views swapped (no second network).
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.precision import full_precision
from cspsr_arch.archs.spectral_translation import SpectralTranslation


class StereoOutput(NamedTuple):
    """What :class:`CrossSpectralStereoNet` returns.

    Attributes:
        disp_l (Tensor): Left (VIS-view) disparity in input pixels, (n, 1, h, w).
        disp_r (Tensor): Right (NIR-view) disparity in input pixels, (n, 1, h, w).
        pseudo_nir (Tensor): Pseudo-NIR rendering of the VIS view, (n, 1, h, w).
    """

    disp_l: Tensor
    disp_r: Tensor
    pseudo_nir: Tensor


def correlation_volume(feat_left: Tensor, feat_right: Tensor, min_disp: int, max_disp: int) -> Tensor:
    """Correlation of left features with right features shifted by each candidate disparity.

    ``cost[n, i, y, x] = sum_c feat_left[n, c, y, x] * feat_right[n, c, y, x - d_i]`` with
    ``d_i = min_disp + i`` (the cosine similarity for unit-normalised features); positions outside the
    right image correlate with zeros.

    Args:
        feat_left (Tensor): (n, c, h, w).
        feat_right (Tensor): (n, c, h, w).
        min_disp (int): Smallest candidate disparity (may be negative).
        max_disp (int): Largest candidate disparity.

    Returns:
        Tensor: Cost volume (n, max_disp - min_disp + 1, h, w).
    """
    width = feat_left.size(-1)
    left_pad, right_pad = max(max_disp, 0), max(-min_disp, 0)
    padded = F.pad(feat_right, (left_pad, right_pad))
    costs = [(feat_left * padded[..., left_pad - d:left_pad - d + width]).sum(dim=1)
             for d in range(min_disp, max_disp + 1)]
    # stacked last, viewed as (n, D, h, w): channels-last like the features, so the aggregation's
    # concatenation and convolutions need no layout conversion
    return torch.stack(costs, dim=-1).permute(0, 3, 1, 2)


def local_contrast(img: Tensor, window: int = 9, eps: float = 0.02) -> Tensor:
    """``(img - local mean) / sqrt(local variance + eps^2)`` over ``window`` x ``window`` neighbourhoods.

    Pseudo-NIR and real NIR differ in brightness and contrast; matching their local structure instead
    of their values makes the cost volume informative even before training.
    """
    pad = (window // 2, ) * 4
    mean = F.avg_pool2d(F.pad(img, pad, mode='replicate'), window, 1)
    var = F.avg_pool2d(F.pad((img - mean)**2, pad, mode='replicate'), window, 1)
    return (img - mean) / (var + eps * eps).sqrt()  # eps inside the root: finite gradients in flat regions


class MatchingFeatures(nn.Module):
    """Shared feature extractor for the two NIR-like images (local contrast, then four convolutions;
    receptive field 11 pixels), zero-mean and unit-length over channels at each pixel.

    Args:
        num_feat (int): Channels. Default: 16.
    """

    def __init__(self, num_feat: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, num_feat, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 2, dilation=2), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1))

    def forward(self, img: Tensor) -> Tensor:
        feat = self.body(local_contrast(img))
        return F.normalize(feat - feat.mean(dim=1, keepdim=True), dim=1)


class CostAggregation(nn.Module):
    """Turns a cost volume plus left features into per-disparity logits with dilated 2D convolutions.

    ``logits = temperature * cost + body(concat(cost, feat_left))``; the body's last convolution starts
    at zero, so the net starts as winner-take-all matching on its features (softened by the
    temperature) and learns to fill textureless and occluded regions from the context (receptive field
    31 pixels).

    Args:
        num_disp (int): Number of candidate disparities D.
        num_feat (int): Channels of the left features.
        num_agg (int): Channels of the body. Default: 32.
    """

    def __init__(self, num_disp: int, num_feat: int, num_agg: int = 32) -> None:
        super().__init__()
        layers = [nn.Conv2d(num_disp + num_feat, num_agg, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True)]
        for dilation in (2, 4, 8):
            layers += [nn.Conv2d(num_agg, num_agg, 3, 1, dilation, dilation=dilation), nn.LeakyReLU(0.1, inplace=True)]
        layers.append(nn.Conv2d(num_agg, num_disp, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)
        self.temperature = nn.Parameter(torch.tensor(30.0))

    def forward(self, cost: Tensor, feat_left: Tensor) -> Tensor:
        return self.temperature * cost + self.body(torch.cat([cost, feat_left], dim=1))


@ARCH_REGISTRY.register()
class CrossSpectralStereoNet(nn.Module):
    """Left and right disparity of a (VIS left, NIR right) pair, plus the pseudo-NIR of the VIS view.

    Disparities follow cspsr's convention (``NIR_l(y, x) = NIR_r(y, x - disp_l(y, x))``,
    ``VIS_r(y, x) = VIS_l(y, x + disp_r(y, x))``), in pixels of the input, in ``[min_disp, max_disp]``.
    Inside CSPSR the inputs are the LR images, so the range is in LR pixels.

    Args:
        num_in_ch (int): VIS channels. Default: 3.
        num_feat (int): Channels of the matching features. Default: 16.
        num_agg (int): Channels of the cost aggregation. Default: 32.
        min_disp (int): Smallest disparity searched (negative only if the data has negative
            disparities, e.g. horizontally flipped stereo pairs). Default: 0.
        max_disp (int): Largest disparity searched. Default: 24 (96 HR pixels at x4).
        translation_feat (int): Channels of the spectral-translation body. Default: 16.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_feat: int = 16,
                 num_agg: int = 32,
                 min_disp: int = 0,
                 max_disp: int = 24,
                 translation_feat: int = 16) -> None:
        super().__init__()
        if max_disp <= min_disp:
            raise ValueError(f'max_disp ({max_disp}) must be larger than min_disp ({min_disp}).')
        self.num_in_ch, self.min_disp, self.max_disp = num_in_ch, min_disp, max_disp
        self.translation = SpectralTranslation(num_in_ch, translation_feat)
        self.features = MatchingFeatures(num_feat)
        self.aggregation = CostAggregation(max_disp - min_disp + 1, num_feat, num_agg)
        candidates = torch.arange(min_disp, max_disp + 1, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer('candidates', candidates, persistent=False)

    def match(self, left: Tensor, right: Tensor) -> Tensor:
        """Left disparity (n, 1, h, w) of two single-channel NIR-like images."""
        n = left.size(0)
        feat = self.features(torch.cat([left, right], dim=0))
        feat_l, feat_r = feat[:n], feat[n:]  # slices, not chunk(): keeps the batch dynamic in ONNX export
        cost = correlation_volume(feat_l, feat_r, self.min_disp, self.max_disp)
        prob = torch.softmax(self.aggregation(cost, feat_l), dim=1)
        return (prob * self.candidates).sum(dim=1, keepdim=True)

    @full_precision  # fp32 under autocast: a bf16 cost volume picks other disparities (archs/precision.py)
    def forward(self, vis: Tensor, nir: Tensor) -> StereoOutput:
        """Disparities of a stereo pair.

        Args:
            vis (Tensor): Left VIS image (n, num_in_ch, h, w) in [0, 1].
            nir (Tensor): Right NIR image (n, 1, h, w) in [0, 1].

        Returns:
            StereoOutput: ``(disp_l, disp_r, pseudo_nir)``.
        """
        if vis.dim() != 4 or vis.size(1) != self.num_in_ch or nir.dim() != 4 or nir.size(1) != 1:
            raise ValueError(f'CrossSpectralStereoNet expects VIS (n, {self.num_in_ch}, h, w) and NIR (n, 1, h, w), '
                             f'got {tuple(vis.shape)} and {tuple(nir.shape)}.')
        if vis.shape[-2:] != nir.shape[-2:] or vis.size(0) != nir.size(0):
            raise ValueError(f'VIS {tuple(vis.shape)} and NIR {tuple(nir.shape)} differ in batch or size.')
        pseudo = self.translation(vis)
        # The right view's disparity is the left disparity of the mirrored pair with the views swapped.
        left = torch.cat([pseudo, nir.flip(-1)], dim=0)
        right = torch.cat([nir, pseudo.flip(-1)], dim=0)
        disp = self.match(left, right)
        n = vis.size(0)
        return StereoOutput(disp[:n], disp[n:].flip(-1), pseudo)
