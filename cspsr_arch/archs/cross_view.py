"""Cross-view matching shared by CSPSR and the guided comparison networks (``cvm``): checking the mode,
building the learned CVM, finding the left/right disparity and warping the right-view NIR onto the left view.

``cvm='learned'``: :class:`~cspsr_arch.archs.cross_spectral_stereo_arch.CrossSpectralStereoNet` under the
network's ``cvm_net`` matches the LR VIS with the NIR (reduced to the LR size when it enters at
``nir_scale > 1``); ``'given'``: the data set's LR disparity; ``'none'``: no matching. The warp runs at the
NIR's own resolution (:func:`~cspsr_arch.archs.hr_nir.warp_fine_nir` above the LR size).
"""
from typing import Optional, Tuple

from torch import Tensor, nn

from cspsr_arch.archs.cross_spectral_stereo_arch import CrossSpectralStereoNet
from cspsr_arch.archs.hr_nir import nir_on_lr_grid, warp_fine_nir

CVM_MODES = ('learned', 'given', 'none')


def cvm_mode(cvm: Optional[str]) -> str:
    """``cvm`` checked against :data:`CVM_MODES` (None, as BasicSR's ``--force_yml`` turns 'none', is 'none')."""
    cvm = 'none' if cvm is None else cvm
    if cvm not in CVM_MODES:
        raise ValueError(f'cvm must be one of {CVM_MODES}, got {cvm!r}.')
    return cvm


def build_cvm_net(num_in_ch: int, num_nir_ch: int, min_disp: int, max_disp: int) -> CrossSpectralStereoNet:
    """The learned CVM of a network with ``cvm='learned'`` (it matches a single-channel NIR)."""
    if num_nir_ch != 1:
        raise ValueError(f"cvm='learned' matches a single-channel NIR image, got num_nir_ch={num_nir_ch}.")
    return CrossSpectralStereoNet(num_in_ch, min_disp=min_disp, max_disp=max_disp)


def check_given_disparity(name: str, lq: Tensor, disp: Optional[Tensor]) -> None:
    """ValueError unless ``disp`` is the (n, 1, h, w) left disparity of the LR VIS ``lq`` (``cvm='given'``)."""
    if disp is None:
        raise ValueError(f"{name}(cvm='given') needs the left disparity: forward(lq, lq_nir, disp). Use a data "
                         "set with disparity (dataroot_disp) or build the network with cvm='learned'.")
    if disp.shape != (lq.size(0), 1, lq.size(2), lq.size(3)):
        raise ValueError(f'Disparity must be (n, 1, h, w) at the LR size {tuple(lq.shape[-2:])}, '
                         f'got {tuple(disp.shape)}.')


def learned_disparity(cvm_net: nn.Module, lq: Tensor, lq_nir: Tensor, nir_scale: int) -> Tuple[Tensor, Tensor]:
    """Left and right disparity (LR pixels) of the learned CVM; a NIR above the LR size is matched reduced to
    it (:func:`~cspsr_arch.archs.hr_nir.nir_on_lr_grid`)."""
    nir_lr = lq_nir if nir_scale == 1 else nir_on_lr_grid(lq_nir, tuple(lq.shape[-2:]))
    disp_l, disp_r, _ = cvm_net(lq, nir_lr)
    return disp_l, disp_r


def warp_nir_to_left(warp: nn.Module, lq_nir: Tensor, disp_l: Tensor, nir_scale: int) -> Tuple[Tensor, Tensor]:
    """The right-view NIR warped onto the left view at its own resolution, and the warp's validity mask.

    Args:
        warp: A :class:`~cspsr_arch.archs.warp.WarpToLeft` (called as a module, so its hooks see the result).
        lq_nir: Right-view NIR (n, c, f*h, f*w), ``f = nir_scale``.
        disp_l: Left disparity in LR pixels (n, 1, h, w).
        nir_scale: ``f``.
    """
    return warp(lq_nir, disp_l) if nir_scale == 1 else warp_fine_nir(warp, lq_nir, disp_l)
