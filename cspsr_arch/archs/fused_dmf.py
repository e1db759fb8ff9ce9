"""Dynamic convolution and CSFT of one DMF module computed together: the same formulas in fewer passes.

:class:`~cspsr_arch.archs.dynamic_conv.DynamicConv` followed by :class:`~cspsr_arch.archs.csft.CSFT`
spends most of its time in convolutions with one to nine output channels, each of which reads a whole
feature map for little arithmetic, and in element-wise passes over whole feature maps. Here

* the convolutions that read ``F_vis`` (the kernel predictor's VIS half and ``w_s1``'s convolution, and
  the VIS half of ``w_s2``'s convolution when the normalisation is folded, see below) are one
  convolution with their weights stacked;
* where the normalisation is a fixed per-channel affine map ``a * x + b`` (batch normalisation in eval
  mode, or ``norm='none'``), it is folded instead of applied: into the weights of ``w_s2``'s convolution
  (plus the convolution of a map of ones with ``sum_c W_c * b_c``, which reproduces the zero padding of
  the normalised map at the border exactly), into the global average pooling
  (``mean(a * x + b) = a * mean(x) + b``) and into the per-channel gates, so the normalised maps are
  never written;
* ``w_s2``'s convolution, which has one output channel, is a matrix product onto its k*k taps and a
  k*k -> 1 convolution with one-hot filters that shifts and sums them (:func:`single_output_conv`);
* ``F'_vis = (F'_nir * w_c2 + F_vis * w_c1 * w_s2) * w_s1`` (normalised maps) is four passes, without
  the (C, h, w) product ``w_s2 * w_c1`` the plain form builds.

Parameters are the modules' own, so checkpoints and the reference forward passes are unchanged.
``tests/test_archs/test_fused_dmf.py`` checks the result against the modules' formulas written out by hand.
"""
import contextlib
from typing import Iterator, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cspsr_arch.archs.csft import CSFT
from cspsr_arch.archs.dynamic_conv import DynamicConv, apply_pixel_kernels

CHANNEL_BLOCK = 8
_PAD_CHANNELS = [True]


@contextlib.contextmanager
def unpadded_convolutions() -> Iterator[None]:
    """Within it, :func:`_conv` convolves without the zero output channels (e.g. to count the network's
    own FLOPs, not the padding's)."""
    _PAD_CHANNELS[0] = False
    try:
        yield
    finally:
        _PAD_CHANNELS[0] = True


def _conv(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding) -> Tensor:
    """``conv2d(x, weight, bias)`` with the weight (a slice or a stack) in the memory format of ``x``.

    The output channels are padded with zero filters up to a multiple of :data:`CHANNEL_BLOCK` and the
    result is a view of the first ones: oneDNN computes output channels in blocks of 8 (AVX2) or 16
    (AVX-512), and a convolution with 9 or 11 outputs took longer than one with 16 on the CPU
    (docs/benchmark.md, Profiling). Not under ``torch.compile``, which chooses the layouts itself.
    """
    out_ch = weight.size(0)
    pad = -out_ch % CHANNEL_BLOCK if out_ch > 1 and _PAD_CHANNELS[0] and not torch.compiler.is_compiling() else 0
    if pad:
        weight = torch.cat([weight, weight.new_zeros(pad, *weight.shape[1:])])
        if bias is not None:
            bias = torch.cat([bias, bias.new_zeros(pad)])
    if x.is_contiguous(memory_format=torch.channels_last):
        weight = weight.contiguous(memory_format=torch.channels_last)
    out = F.conv2d(x, weight, bias, 1, padding)
    return out[:, :out_ch] if pad else out


def single_output_conv(parts: Sequence[Tuple[Tensor, Tensor]], bias: Optional[Tensor] = None,
                       tap_bias: Optional[Tensor] = None) -> Tensor:
    """``sum_i conv2d(x_i, w_i) + bias`` for k x k convolutions with one output channel ("same" zero padding).

    oneDNN computes output channels in blocks, so a convolution with one output costs about as much as one
    with 16 (docs/benchmark.md, Profiling). Here each input is projected onto the k*k taps of its filter
    with one matrix product (``(n*h*w, C) @ (C, k*k)``, a view of a channels-last map), and a k*k -> 1
    convolution whose filters are one-hot shifts the tap maps into place and sums them, with the same zero
    padding as the convolution it replaces.

    Args:
        parts (Sequence[tuple[Tensor, Tensor]]): ``(x, w)`` pairs, ``x`` (n, C_i, h, w) and ``w``
            (1, C_i, k, k), the same n, h, w and k for all.
        bias (Tensor | None): (1,) added once per output pixel, like a convolution's bias.
        tap_bias (Tensor | None): (k*k,) added to each tap map before the shifted sum: at every output
            pixel it adds the taps that fall inside the image, which is exactly the convolution of a map of
            ones with this filter under zero padding.

    Returns:
        Tensor: (n, 1, h, w).
    """
    (first, weight), taps = parts[0], parts[0][1].size(-1)**2
    n, _, height, width = first.shape
    proj = None
    for x, w in parts:
        if w.shape[0] != 1 or w.size(-1) != w.size(-2) or w.size(-1) % 2 == 0:
            raise ValueError('single_output_conv takes odd square filters with one output channel, '
                             f'got {tuple(w.shape)}.')
        rows, cols = x.permute(0, 2, 3, 1).reshape(-1, x.size(1)), w.reshape(x.size(1), taps)
        if proj is None:
            proj = torch.addmm(tap_bias, rows, cols) if tap_bias is not None else rows @ cols
        else:
            # in place: the products' backward passes need neither sum; in proj's type, as autocast does not cast
            # in-place products (a normalised, fp32 part after a half-precision one)
            proj = proj.addmm_(rows.to(proj.dtype), cols.to(proj.dtype))
    shifts = torch.eye(taps, dtype=first.dtype, device=first.device).view(1, taps, *weight.shape[-2:])
    tap_maps = proj.view(n, height, width, taps).permute(0, 3, 1, 2)  # channels-last (n, k*k, h, w)
    return F.conv2d(tap_maps, shifts.contiguous(memory_format=torch.channels_last), bias, 1, weight.size(-1) // 2)


def fixed_affine(norm: nn.Module, num_feat: int, like: Tensor) -> Optional[Tuple[Tensor, Tensor]]:
    """``(a, b)``, each (1, C, 1, 1), when ``norm(x) = a * x + b`` with constants (no batch or image statistics).

    Args:
        norm (nn.Module): CSFT's normalisation layer.
        num_feat (int): Channels C.
        like (Tensor): Gives the device and dtype of the identity map's constants.

    Returns:
        tuple[Tensor, Tensor] | None: The map; None when ``norm`` uses statistics of its input (batch
        normalisation in training mode, instance normalisation).
    """
    if isinstance(norm, nn.Identity):
        return like.new_ones(1, num_feat, 1, 1), like.new_zeros(1, num_feat, 1, 1)
    if isinstance(norm, nn.BatchNorm2d) and not norm.training and norm.running_var is not None:
        scale = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight
        shift = -norm.running_mean * scale
        if norm.bias is not None:
            shift = shift + norm.bias
        return scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)
    return None


def dyconv_csft(dyconv: DynamicConv, csft: CSFT, feat_vis: Tensor, feat_nir: Tensor) -> Tuple[Tensor, Tensor]:
    """``(F'_nir, F'_vis)`` with ``F'_nir = dyconv(F_vis, F_nir)`` and ``F'_vis = csft(F_vis, F'_nir)``.

    Args:
        dyconv (DynamicConv): The module's dynamic convolution (its 3x3 kernel predictor).
        csft (CSFT): The module's CSFT unit.
        feat_vis (Tensor): F_vis (n, C, h, w).
        feat_nir (Tensor): F_nir (n, C, h, w).

    Returns:
        tuple[Tensor, Tensor]: F'_nir and F'_vis, each (n, C, h, w).
    """
    num_feat, taps = feat_vis.size(1), dyconv.kernel_size**2
    predict, spatial_vis, spatial_cat = dyconv.predict, csft.spatial_vis, csft.spatial_cat
    if not predict.padding == spatial_vis.padding == spatial_cat.padding:
        raise ValueError('dyconv_csft stacks the 3x3 convolutions of the kernel predictor and CSFT; they must have '
                         'the same padding.')
    affine_vis = fixed_affine(csft.norm_vis, num_feat, feat_vis)
    affine_nir = fixed_affine(csft.norm_nir, num_feat, feat_vis)
    folded = affine_vis is not None and affine_nir is not None
    cat_vis, cat_nir = spatial_cat.weight[:, :num_feat], spatial_cat.weight[:, num_feat:]

    # One convolution of F_vis: predictor logits (VIS half), w_s1's logit, [w_s2's logit (VIS half)].
    weights, biases = [predict.weight[:, :num_feat], spatial_vis.weight], [predict.bias, spatial_vis.bias]
    if folded:
        weights.append(cat_vis * affine_vis[0].view(1, num_feat, 1, 1))
        biases.append(spatial_cat.bias)
    from_vis = _conv(feat_vis, torch.cat(weights), torch.cat(biases), predict.padding)
    logits = from_vis[:, :taps] + _conv(feat_nir, predict.weight[:, num_feat:], None, predict.padding)
    nir = apply_pixel_kernels(feat_nir, torch.softmax(logits, dim=1), dyconv.kernel_size)
    w_s1 = torch.sigmoid(from_vis[:, taps:taps + 1])

    if folded:
        (a_vis, b_vis), (a_nir, b_nir) = affine_vis, affine_nir
        # conv(a * x + b) = conv(x; W * a) + conv(ones; sum_c W_c * b_c): the second term (single_output_conv's
        # tap_bias) is exact at the zero-padded border too, where the constant b is padded with zeros.
        shift_kernel = (cat_vis * b_vis.view(1, -1, 1, 1)).sum(1, keepdim=True) + (cat_nir * b_nir.view(
            1, -1, 1, 1)).sum(1, keepdim=True)
        w_s2 = torch.sigmoid(from_vis[:, taps + 1:taps + 2]
                             + single_output_conv([(nir, cat_nir * a_nir.view(1, -1, 1, 1))],
                                                  tap_bias=shift_kernel.view(-1)))
        mean_vis, mean_nir = feat_vis.mean(dim=(2, 3), keepdim=True), nir.mean(dim=(2, 3), keepdim=True)
        gap = torch.cat([a_vis * mean_vis + b_vis, a_nir * mean_nir + b_nir] if csft.channel_pool == 'normalised'
                        else [mean_vis, mean_nir], dim=1)
        w_c1, w_c2 = torch.sigmoid(csft.channel(gap)).chunk(2, dim=1)
        # = norm(F'_nir) * w_c2 and norm(F_vis) * w_c1; a product then an in-place sum is faster than
        # addcmul with a (1, C, 1, 1) first operand, which broadcasts slowly
        part_nir = (nir * (a_nir * w_c2)).add_(b_nir * w_c2)
        part_vis = (feat_vis * (a_vis * w_c1)).add_(b_vis * w_c1)
    else:
        vis_n, nir_n = csft.norm_vis(feat_vis), csft.norm_nir(nir)
        w_s2 = torch.sigmoid(single_output_conv([(vis_n, cat_vis), (nir_n, cat_nir)], spatial_cat.bias))
        pooled = (vis_n, nir_n) if csft.channel_pool == 'normalised' else (feat_vis, nir)
        gap = torch.cat([x.mean(dim=(2, 3), keepdim=True) for x in pooled], dim=1)
        w_c1, w_c2 = torch.sigmoid(csft.channel(gap)).chunk(2, dim=1)
        part_nir, part_vis = nir_n * w_c2, vis_n * w_c1
    fused = part_nir.addcmul_(part_vis, w_s2)  # in place: autograd needs neither part_nir's old value
    # w_s1's gradient needs `fused` itself, so the last product is in place only without autograd
    return nir, (fused.mul_(w_s1) if not torch.is_grad_enabled() else fused * w_s1)
