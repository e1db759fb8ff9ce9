"""Bicubic upsampling by an integer factor as a convolution at the low resolution (polyphase form).

``F.interpolate(x, scale_factor=s, mode='bicubic', align_corners=False)`` gives output pixel ``s*i + r``
(per axis) as four taps around input pixel ``i`` with cubic weights that depend only on the phase ``r``,
the border taps clamped to the image. So it is a grouped convolution of the edge-replicated input with
``s*s`` fixed 5x5 filters per channel (the four taps of every phase fall within ``i-2 .. i+2``), followed
by a pixel shuffle. In that form the global skips of CSPSR are added to the reconstruction head's
convolution output before its pixel shuffle: one small convolution at the LR size instead of an
interpolation and a sum at the HR size, and under ``torch.compile`` an ordinary convolution rather than
inductor's gather of 16 taps per output pixel.
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

CUBIC_A = -0.75  # PyTorch's (and OpenCV's) bicubic coefficient


def _cubic_taps(t: float) -> Tuple[float, float, float, float]:
    """Weights of the taps at offsets -1, 0, 1, 2 from ``floor(src)`` for the fraction ``t`` (PyTorch's kernel)."""
    a = CUBIC_A

    def near(x: float) -> float:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: float) -> float:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return far(t + 1), near(t), near(1 - t), far(2 - t)


def phase_weights(scale: int) -> Tuple[Tuple[float, ...], ...]:
    """``scale`` rows of five weights: row ``r`` gives output pixel ``scale*i + r`` from inputs ``i-2 .. i+2``.

    The source coordinate is ``(scale*i + r + 0.5) / scale - 0.5`` as in ``F.interpolate`` with
    ``align_corners=False``; its integer part is ``i - 1`` or ``i``.
    """
    rows = []
    for r in range(scale):
        src = (r + 0.5) / scale - 0.5  # relative to i
        base = math.floor(src)
        row = [0.0] * 5
        for offset, weight in zip(range(base - 1, base + 3), _cubic_taps(src - base)):
            row[offset + 2] += weight
        rows.append(tuple(row))
    return tuple(rows)


def bicubic_phases(x: Tensor, scale: int) -> Tensor:
    """The bicubic upsampling of ``x`` by ``scale`` before its pixel shuffle: (n, C*scale**2, h, w).

    ``F.pixel_shuffle(bicubic_phases(x, s), s)`` equals ``F.interpolate(x, scale_factor=s, mode='bicubic',
    align_corners=False)`` up to float rounding (the phases are summed in another order).

    Args:
        x (Tensor): Low-resolution images (n, C, h, w).
        scale (int): Integer upscaling factor.

    Returns:
        Tensor: Channel ``c*scale**2 + ry*scale + rx`` holds output pixels ``(scale*i + ry, scale*j + rx)``
        of channel ``c``, the order :func:`torch.nn.functional.pixel_shuffle` expects.
    """
    rows = torch.tensor(phase_weights(scale), dtype=x.dtype, device=x.device)  # (s, 5)
    filters = (rows[:, None, :, None] * rows[None, :, None, :]).reshape(scale * scale, 1, 5, 5)
    channels = x.size(1)
    filters = filters.repeat(channels, 1, 1, 1).contiguous(memory_format=torch.channels_last)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode='replicate'), filters, None, 1, 0, 1, channels)


def _fine_axis_weights(factor: int, scale: int) -> Tensor:
    """Per axis, ``(factor*scale, factor, 3)`` weights: output phase ``p`` from sub-position ``q`` of LR pixels
    ``i-1, i, i+1`` of an input at ``factor`` times the LR size (see :func:`bicubic_phases_unshuffled`)."""
    rows = phase_weights(scale)
    weights = torch.zeros(factor * scale, factor, 3, dtype=torch.float64)
    for q in range(factor):  # sub-position of the fine pixel I = factor*i + q
        for rho in range(scale):  # output pixel scale*I + rho = (factor*scale)*i + scale*q + rho
            for t in range(-2, 3):  # the five taps I-2 .. I+2
                lr_offset, sub = divmod(q + t, factor)  # floors: lr_offset in -1..1 for factor >= 2
                weights[scale * q + rho, sub, lr_offset + 1] += rows[rho][t + 2]
    return weights


def bicubic_phases_unshuffled(x: Tensor, factor: int, scale: int) -> Tensor:
    """Pre-shuffle phases, on the LR grid, of the bicubic upsampling by ``scale`` of ``x`` at ``factor`` x LR.

    ``F.pixel_shuffle(bicubic_phases_unshuffled(x, f, s), f * s)`` equals ``F.interpolate(x, scale_factor=s,
    mode='bicubic', align_corners=False)`` up to float rounding: the global NIR skip of a reconstruction head
    at ``f * s`` x LR when the NIR enters at ``f`` x LR (``CSPSR(nir_scale=f)``), added to the head's
    convolution output before its pixel shuffle like :func:`bicubic_phases` (the ``factor == 1`` case).

    With ``scale == 1`` it is ``F.pixel_unshuffle(x, factor)`` (the identity skip). Otherwise the five
    taps of each output pixel lie within one LR pixel of its own, so it is one grouped 3x3 convolution,
    from the ``factor**2`` sub-positions to the ``(factor*scale)**2`` phases, of the edge-replicated input
    pixel-unshuffled onto the LR grid (the replication by ``factor`` fine pixels gives the clamped border
    taps of ``F.interpolate`` exactly): no interpolation at the output size and no channel permutation.

    Args:
        x (Tensor): Images (n, C, factor*h, factor*w).
        factor (int): Size of ``x`` relative to the LR grid.
        scale (int): Integer upscaling factor of ``x``.

    Returns:
        Tensor: (n, C*(factor*scale)**2, h, w), channel ``c*U**2 + py*U + px`` (``U = factor*scale``) holding
        output pixels ``(U*i + py, U*j + px)``, the order :func:`torch.nn.functional.pixel_shuffle` expects.
    """
    if factor == 1:
        return bicubic_phases(x, scale)
    if scale == 1:
        return F.pixel_unshuffle(x, factor)
    axis = _fine_axis_weights(factor, scale).to(dtype=x.dtype, device=x.device)  # (U, f, 3)
    phases = factor * scale
    filters = torch.einsum('pak,qbl->pqabkl', axis, axis).reshape(phases * phases, factor * factor, 3, 3)
    channels = x.size(1)
    filters = filters.repeat(channels, 1, 1, 1).contiguous(memory_format=torch.channels_last)
    fine = F.pixel_unshuffle(F.pad(x, (factor, ) * 4, mode='replicate'), factor)  # (n, C*f*f, h+2, w+2)
    return F.conv2d(fine, filters, None, 1, 0, 1, channels)
