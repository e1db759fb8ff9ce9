"""NIR guidance at a higher resolution than the LR VIS: the pieces of ``CSPSR(nir_scale=f)`` with ``f > 1``.

Some RGB-NIR rigs have a NIR camera of higher resolution than the visible one (and a NIR image at the
output size is the upper bound of what NIR guidance can give). With ``nir_scale = f`` the NIR enters at
``f`` times the LR size of the VIS (``f`` divides the SR scale). The network still works on the LR grid:

1. cross-view matching finds the disparity on the LR grid, the learned CVM on the NIR reduced to the LR
   size (:func:`nir_on_lr_grid`), so its weights, search range and cost are those of ``f = 1``;
2. the NIR is warped at its own resolution by that disparity upscaled to it (:func:`warp_fine_nir`): the
   warp keeps the detail the LR grid cannot hold;
3. the warped NIR and its validity mask are pixel-unshuffled onto the LR grid (:func:`guide_on_lr_grid`),
   ``(num_nir_ch + 1) * f**2`` channels: every fine NIR sample reaches the NIR branch (or the
   concatenation of ``branches='concat'``), none is averaged away;
4. the NIR head's global skip is the bicubic upsampling of the warped NIR by ``upscale / f``
   (:func:`~cspsr_arch.archs.bicubic.bicubic_phases_unshuffled`), the warped NIR itself when ``f`` is the
   scale.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cspsr_arch.archs.bicubic import bicubic_phases_unshuffled
from cspsr_arch.archs.warp import upscale_disparity


def check_nir_scale(nir_scale: object, upscale: int, branches: str) -> int:
    """``nir_scale`` if it suits a network of ``upscale`` with ``branches``, else a ValueError saying why.

    Args:
        nir_scale: The constructor argument: an int dividing ``upscale``.
        upscale: The network's scale factor.
        branches: ``'dual'``, ``'vis'`` or ``'concat'`` (``'vis'`` reads no NIR: only 1).
    """
    allowed = [f for f in range(1, upscale + 1) if upscale % f == 0]
    if isinstance(nir_scale, bool) or not isinstance(nir_scale, int) or nir_scale not in allowed:
        raise ValueError(f'nir_scale must be an integer that divides upscale ({upscale}), one of {allowed}: the '
                         'NIR enters at nir_scale x the LR size of the VIS, at most at the output size; got '
                         f'{nir_scale!r}.')
    if branches == 'vis' and nir_scale != 1:
        raise ValueError(f"branches='vis' reads no NIR image, so nir_scale must be 1, got {nir_scale}.")
    return nir_scale


def nir_on_lr_grid(nir: Tensor, size: Tuple[int, int]) -> Tensor:
    """The fine NIR reduced to the LR ``size`` for cross-view matching: antialiased bicubic resizing.

    Antialiased bicubic (a widened cubic kernel, like MATLAB's ``imresize``) is close to how the LR images
    of the data are made (BasicSR's MATLAB-style ``imresize``), so the learned CVM sees the kind of NIR it
    was trained on.

    Args:
        nir: NIR (n, c, f*h, f*w).
        size: LR (h, w).
    """
    return F.interpolate(nir, size=size, mode='bicubic', antialias=True, align_corners=False)


def warp_fine_nir(warp: nn.Module, nir: Tensor, disp_lr: Tensor) -> Tuple[Tensor, Tensor]:
    """Warp the fine NIR into the left view at its own resolution, by the LR left disparity upscaled to it.

    Args:
        warp: A :class:`~cspsr_arch.archs.warp.WarpToLeft` (called as a module, so its forward hooks see
            the fine warped NIR).
        nir: Right-view NIR (n, c, f*h, f*w).
        disp_lr: Left disparity in LR pixels (n, 1, h, w); bilinearly upscaled, its values times ``f``.

    Returns:
        The warped NIR (n, c, f*h, f*w) and its validity mask (n, 1, f*h, f*w).
    """
    return warp(nir, upscale_disparity(disp_lr, tuple(nir.shape[-2:])))


def guide_on_lr_grid(nir: Tensor, valid: Tensor, nir_scale: int) -> Tensor:
    """``pixel_unshuffle(cat([nir, valid]), f)``: (n, (c + 1) * f**2, h, w), channel ``k*f*f + dy*f + dx`` the
    fine sample ``(f*i + dy, f*j + dx)`` of channel ``k`` (the NIR channels first, then the mask)."""
    return F.pixel_unshuffle(torch.cat([nir, valid], dim=1), nir_scale)


def nir_skip_phases(guide: Tensor, nir: Tensor, nir_scale: int, upscale: int) -> Tensor:
    """The NIR head's global skip in its pre-shuffle layout: bicubic of the fine NIR by ``upscale / f``.

    When ``f == upscale`` the skip is the warped NIR itself, whose pre-shuffle layout is the NIR part of
    ``guide`` (a view, no computation); otherwise one small convolution on the LR grid.

    Args:
        guide: :func:`guide_on_lr_grid` of ``nir``.
        nir: The warped fine NIR (n, c, f*h, f*w).
        nir_scale: ``f``.
        upscale: The network's scale factor.
    """
    if nir_scale == upscale:
        return guide[:, :nir.size(1) * nir_scale * nir_scale]
    return bicubic_phases_unshuffled(nir, nir_scale, upscale // nir_scale)


def output_nir_path(num_nir_ch: int, num_out_ch: int, width: int = 16, depth: int = 4) -> nn.Sequential:
    """A small convolution stack from the matched NIR at the output size (and its validity mask) to the VIS
    output, added to it: CMSR's guide branch (Shacht et al., CVPR 2021: 3x3 convolutions of 16 channels with
    ReLU between, the last a 1x1, four in its cross-modality configurations). Its last convolution starts at
    zero, so the network starts as the one without it.

    Args:
        num_nir_ch: NIR channels (the validity mask is one more input channel).
        num_out_ch: VIS channels.
        width: Channels between the convolutions (CMSR: 16).
        depth: Convolutions, the last 1x1 (CMSR: 4).
    """
    layers = []
    for k in range(depth - 1):
        layers += [nn.Conv2d(num_nir_ch + 1 if k == 0 else width, width, 3, 1, 1), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(width, num_out_ch, 1))
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)
