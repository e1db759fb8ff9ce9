"""Dynamic (per-pixel) convolution: the first step of a DMF module."""
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_on_concat(conv: nn.Conv2d, first: Tensor, second: Tensor) -> Tensor:
    """``conv(torch.cat([first, second], 1))`` without building the concatenation.

    A convolution of a channel concatenation is the sum of convolutions of its parts with the matching
    slices of the weight; this skips copying two full feature maps per call (a measurable share of
    CSPSR's CPU time, docs/design_notes.md).
    """
    split = first.size(1)
    weight = conv.weight
    out = F.conv2d(first, weight[:, :split], conv.bias, conv.stride, conv.padding, conv.dilation)
    return out + F.conv2d(second, weight[:, split:], None, conv.stride, conv.padding, conv.dilation)


def apply_pixel_kernels(feat: Tensor, kernels: Tensor, kernel_size: int) -> Tensor:
    """Filter ``feat`` with a k x k kernel that varies per pixel and is shared by all channels.

    ``out[n, c, y, x] = sum_{i,j} kernels[n, i*k+j, y, x] * feat[n, c, y+i-k//2, x+j-k//2]`` (zero padded).
    It is computed tap by tap, each tap a fused multiply-add in place (``addcmul_``), so the memory stays
    that of two feature maps instead of the k*k-times larger ``unfold`` tensor; time is k*k fused
    multiply-adds per element. Without autograd each tap covers only the rectangle of output pixels whose
    shifted input lies inside the image (the zero padding adds nothing elsewhere), which saves the padded
    copy of ``feat``; with autograd the taps run over a padded copy, as in-place updates of sub-rectangles
    would make the backward pass copy the whole gradient once per tap.

    Args:
        feat (Tensor): Features (n, c, h, w).
        kernels (Tensor): Per-pixel kernels (n, k*k, h, w), row-major over the k x k window.
        kernel_size (int): Odd window size k.

    Returns:
        Tensor: Filtered features (n, c, h, w).
    """
    pad = kernel_size // 2
    height, width = feat.shape[-2:]
    if torch.is_grad_enabled() and (feat.requires_grad or kernels.requires_grad):
        padded = F.pad(feat, (pad, pad, pad, pad))
        out = padded[:, :, 0:height, 0:width] * kernels[:, 0:1]
        for idx in range(1, kernel_size * kernel_size):
            i, j = divmod(idx, kernel_size)
            out.addcmul_(padded[:, :, i:i + height, j:j + width], kernels[:, idx:idx + 1])  # fused, in place
        return out
    centre = (kernel_size * kernel_size) // 2
    out = feat * kernels[:, centre:centre + 1]
    for idx in range(kernel_size * kernel_size):
        dy, dx = idx // kernel_size - pad, idx % kernel_size - pad
        if idx == centre or abs(dy) >= height or abs(dx) >= width:
            continue
        # output rows y with 0 <= y + dy < height, columns likewise
        oy, ox = slice(max(-dy, 0), height - max(dy, 0)), slice(max(-dx, 0), width - max(dx, 0))
        iy, ix = slice(max(dy, 0), height + min(dy, 0)), slice(max(dx, 0), width + min(dx, 0))
        out[:, :, oy, ox].addcmul_(feat[:, :, iy, ix], kernels[:, idx:idx + 1, oy, ox])  # fused, in place
    return out


class DynamicConv(nn.Module):
    """Predicts a k x k kernel per pixel from concat(F_vis, F_nir) and filters F_nir with it.

    Reading of the paper (which does not say how the kernels are normalised): one kernel per pixel,
    shared across channels (as in guided dynamic filters), predicted by a 3x3 convolution and
    normalised by a softmax over its k*k taps. The filtered NIR feature is then a local, content-
    dependent convex combination of its neighbours: it can shift NIR features by a fraction of a pixel
    (refining the cross-view warp) or smooth them, and its magnitude never exceeds that of F_nir.
    Unnormalised kernels make the output quadratic in F_nir (the kernels are predicted from F_nir
    itself): in training at lr 2e-3 the NIR branch then diverged (docs/design_notes.md), which the
    softmax rules out. The predictor starts near identity
    (centre tap weight about 0.9).

    Args:
        num_feat (int): Channels C of each branch. Default: 64.
        kernel_size (int): Odd size k of the predicted kernels. Default: 3.
    """

    def __init__(self, num_feat: int = 64, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}.')
        self.kernel_size = kernel_size
        taps = kernel_size * kernel_size
        self.predict = nn.Conv2d(2 * num_feat, taps, 3, 1, 1)
        nn.init.normal_(self.predict.weight, std=1e-3)
        with torch.no_grad():  # centre tap weight 0.9 at start: close to the identity filter
            self.predict.bias.zero_()
            self.predict.bias[taps // 2] = math.log(0.9 * (taps - 1) / 0.1)

    def kernels(self, feat_vis: Tensor, feat_nir: Tensor) -> Tensor:
        """Per-pixel kernels (n, k*k, h, w), each summing to 1."""
        return torch.softmax(conv_on_concat(self.predict, feat_vis, feat_nir), dim=1)

    def forward(self, feat_vis: Tensor, feat_nir: Tensor) -> Tensor:
        return apply_pixel_kernels(feat_nir, self.kernels(feat_vis, feat_nir), self.kernel_size)
