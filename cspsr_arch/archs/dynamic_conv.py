"""Dynamic (per-pixel) convolution: the first step of a DMF module."""
import math
from typing import Iterator, Optional, Tuple

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


def _taps(kernel_size: int, height: int, width: int) -> Iterator[Tuple[int, Tuple[slice, slice], Tuple[slice, slice]]]:
    """Each tap ``idx`` of a k x k window with the output rectangle ``(oy, ox)`` it reaches inside the image
    and the input rectangle ``(iy, ix)`` it reads (the zero padding adds nothing outside them)."""
    pad = kernel_size // 2
    for idx in range(kernel_size * kernel_size):
        dy, dx = idx // kernel_size - pad, idx % kernel_size - pad
        if abs(dy) >= height or abs(dx) >= width:
            continue
        # output rows y with 0 <= y + dy < height, columns likewise
        out_rect = (slice(max(-dy, 0), height - max(dy, 0)), slice(max(-dx, 0), width - max(dx, 0)))
        in_rect = (slice(max(dy, 0), height + min(dy, 0)), slice(max(dx, 0), width + min(dx, 0)))
        yield idx, out_rect, in_rect


def _filter(feat: Tensor, kernels: Tensor, kernel_size: int) -> Tensor:
    """The dynamic filtering without autograd: the centre tap, then each other tap added in place."""
    centre = (kernel_size * kernel_size) // 2
    out = feat * kernels[:, centre:centre + 1]
    for idx, (oy, ox), (iy, ix) in _taps(kernel_size, *feat.shape[-2:]):
        if idx != centre:
            out[:, :, oy, ox].addcmul_(feat[:, :, iy, ix], kernels[:, idx:idx + 1, oy, ox])  # fused, in place
    return out


def _filter_padded(feat: Tensor, kernels: Tensor, kernel_size: int) -> Tensor:
    """The dynamic filtering over a zero-padded copy, for ``torch.compile`` (training and inference).

    Inductor fuses these taps (and their autograd backward pass) into a few loops; this is the form the
    compiled training steps were first measured with. In-place updates of sub-rectangles, as :func:`_filter`
    makes, become scatters in inductor's graph. For compiled inference the two forms were not told apart:
    one idle profile run with each gave compiled / eager CSPSR 0.98 (in place) and 0.89 (padded), within
    the 2-core machine's run-to-run drift (docs/benchmark.md, Profiling).
    """
    pad, (height, width) = kernel_size // 2, feat.shape[-2:]
    padded = F.pad(feat, (pad, pad, pad, pad))
    out = padded[:, :, 0:height, 0:width] * kernels[:, 0:1]
    for idx in range(1, kernel_size * kernel_size):
        i, j = divmod(idx, kernel_size)
        out.addcmul_(padded[:, :, i:i + height, j:j + width], kernels[:, idx:idx + 1])
    return out


class _PixelKernels(torch.autograd.Function):
    """:func:`apply_pixel_kernels` with a hand-written backward pass.

    Autograd through the tap-by-tap forward pass records two slices and a product per tap, and its
    backward pass writes each slice's gradient into a zero tensor of the whole input before adding it
    up; here the input gradient is the adjoint filtering (each tap's rectangle added in place) and the
    kernel gradient one channel sum per tap. Only ``feat`` and ``kernels`` are kept for the backward pass.
    """

    @staticmethod
    def forward(ctx, feat: Tensor, kernels: Tensor, kernel_size: int) -> Tensor:
        ctx.save_for_backward(feat, kernels)
        ctx.kernel_size = kernel_size
        return _filter(feat, kernels, kernel_size)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], Optional[Tensor], None]:
        feat, kernels = ctx.saved_tensors
        kernel_size, centre = ctx.kernel_size, (ctx.kernel_size**2) // 2
        grad_feat = grad_kernels = None
        if ctx.needs_input_grad[0]:  # d out[y] / d feat[y + d] = kernels[tap d, y]
            grad_feat = grad_out * kernels[:, centre:centre + 1]
            for idx, (oy, ox), (iy, ix) in _taps(kernel_size, *feat.shape[-2:]):
                if idx != centre:
                    grad_feat[:, :, iy, ix].addcmul_(grad_out[:, :, oy, ox], kernels[:, idx:idx + 1, oy, ox])
        if ctx.needs_input_grad[1]:  # d out[c, y] / d kernels[tap d, y] = feat[c, y + d]
            grad_kernels = torch.zeros_like(kernels)
            for idx, (oy, ox), (iy, ix) in _taps(kernel_size, *feat.shape[-2:]):
                grad_kernels[:, idx, oy, ox] = (grad_out[:, :, oy, ox] * feat[:, :, iy, ix]).sum(1)
        return grad_feat, grad_kernels, None


def apply_pixel_kernels(feat: Tensor, kernels: Tensor, kernel_size: int) -> Tensor:
    """Filter ``feat`` with a k x k kernel that varies per pixel and is shared by all channels.

    ``out[n, c, y, x] = sum_{i,j} kernels[n, i*k+j, y, x] * feat[n, c, y+i-k//2, x+j-k//2]`` (zero padded).
    It is computed tap by tap, each tap a fused multiply-add in place (``addcmul_``) over the rectangle
    of output pixels whose shifted input lies inside the image (the zero padding adds nothing elsewhere),
    so the memory stays that of two feature maps, without the k*k-times larger ``unfold`` tensor or a
    padded copy; time is k*k fused multiply-adds per element. With autograd a hand-written backward pass
    (:class:`_PixelKernels`) replaces the per-tap slices autograd would record. Under ``torch.compile``
    the taps run over a padded copy, which inductor fuses (:func:`_filter_padded`).

    Args:
        feat (Tensor): Features (n, c, h, w).
        kernels (Tensor): Per-pixel kernels (n, k*k, h, w), row-major over the k x k window.
        kernel_size (int): Odd window size k.

    Returns:
        Tensor: Filtered features (n, c, h, w).
    """
    if torch.compiler.is_compiling():
        return _filter_padded(feat, kernels, kernel_size)
    if torch.is_grad_enabled() and (feat.requires_grad or kernels.requires_grad):
        return _PixelKernels.apply(feat, kernels, kernel_size)
    return _filter(feat, kernels, kernel_size)


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
