"""VIS-only super-resolution networks of BasicSR's registry (EDSR, RCAN, HAT, ...) behind ``basicsr infer``.

Such a network maps an LR RGB image ``(n, 3, h, w)`` in [0, 1] to ``(n, 3, s*h, s*w)``; it reads no NIR
image. :class:`VisOnlySR` wraps it so that the tiling and output code of ``basicsr infer``
(:mod:`cspsr_arch.infer.tiling`) runs it exactly like a CSPSR without cross-view matching: the same
attributes (``upscale``, ``cvm = 'none'``, ``branches = 'vis'``) and the same output tuple, with no NIR
output. The scale is not taken from the options (EDSR keeps no ``upscale`` attribute, other archs call
it differently): :func:`probe_scale` runs the loaded network once on a small input and measures it,
which also refuses, in one sentence, a registered arch that is not a single-image SR network
(a discriminator, a video network).
"""
from typing import Optional, Union

import torch
from torch import Tensor, nn

from cspsr_arch.archs.cspsr_arch import CSPSR, CSPSROutput
from cspsr_arch.errors import CSPSRInputError

CROSS_SPECTRAL_ARCHS = ('CSPSR', )
"""Archs of ``network_g`` that read the NIR image (``basicsr infer`` then needs ``--nir``), besides every
:class:`~cspsr_arch.archs.guided.GuidedSR` (the comparison networks: PASSR, NAFSSR, MASASR, CMSR)."""
NOT_SR_ARCHS = {'CrossSpectralStereoNet': 'a CrossSpectralStereoNet only predicts disparity'}
"""Registered archs ``basicsr infer`` refuses before building them, with the reason."""
PROBE_SIZE = 16
"""Side of the LR probe input of :func:`probe_scale` (a multiple of the usual attention windows, 8 and 16)."""


def reads_nir(arch: str) -> bool:
    """Whether ``network_g:type`` ``arch`` super-resolves with the help of a NIR image.

    Args:
        arch (str): The registered arch name.
    """
    if arch in CROSS_SPECTRAL_ARCHS:
        return True
    from basicsr.utils.registry import ARCH_REGISTRY

    from cspsr_arch.archs.guided import GuidedSR
    try:
        cls = ARCH_REGISTRY.get(arch)
    except KeyError:
        return False
    return isinstance(cls, type) and issubclass(cls, GuidedSR)


def probe_scale(net: nn.Module, arch: str, opt_path: str) -> int:
    """The scale factor of a VIS-only network, measured on a ``PROBE_SIZE`` square RGB input.

    Args:
        net (nn.Module): The network with its weights, in eval mode, on the CPU or its device.
        arch (str): ``network_g:type``, for the messages.
        opt_path (str): The options file, for the messages.

    Returns:
        int: ``s`` such that the output is ``(1, 3, s*h, s*w)``.
    """
    param = next(iter(net.parameters()), None)
    probe = torch.rand(1, 3, PROBE_SIZE, PROBE_SIZE, generator=torch.Generator().manual_seed(0))
    if param is not None:
        probe = probe.to(param.device)
    try:
        with torch.no_grad():
            out = net(probe)
    except Exception as err:  # any arch of the registry: its own error says why it cannot take the input
        raise CSPSRInputError(f'{opt_path}: network_g:type {arch} does not run on a (1, 3, h, w) RGB image '
                              f'({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ""}); '
                              'basicsr infer runs CSPSR and single-image SR networks (EDSR, RCAN, HAT, ...).') from None
    shape = tuple(out.shape) if isinstance(out, Tensor) else None
    if shape is None or len(shape) != 4 or shape[:2] != (1, 3) or shape[2] != shape[3] or shape[2] % PROBE_SIZE:
        got = f'a {type(out).__name__}' if shape is None else f'shape {shape}'
        raise CSPSRInputError(f'{opt_path}: network_g:type {arch} is not a single-image super-resolution network: a '
                              f'(1, 3, {PROBE_SIZE}, {PROBE_SIZE}) input gave {got}, not (1, 3, s*{PROBE_SIZE}, '
                              f's*{PROBE_SIZE}). basicsr infer runs CSPSR and single-image SR networks (EDSR, RCAN, '
                              'HAT, ...).')
    return shape[2] // PROBE_SIZE


class VisOnlySR(nn.Module):
    """A VIS-only SR network with the interface :mod:`cspsr_arch.infer.tiling` runs.

    Args:
        net (nn.Module): The network, ``forward(lq) -> sr``.
        upscale (int): Its scale factor (:func:`probe_scale`).
        arch (str): ``network_g:type`` (messages, the summary line of ``basicsr infer``).
    """

    cvm = 'none'  # nothing is matched across views: no disparity margin around tiles
    branches = 'vis'  # no NIR output

    def __init__(self, net: nn.Module, upscale: int, arch: str) -> None:
        super().__init__()
        self.net, self.upscale, self.arch = net, upscale, arch

    def forward(self, lq: Tensor, lq_nir: Optional[Tensor] = None, disp: Optional[Tensor] = None) -> CSPSROutput:
        """Super-resolve the VIS image; ``lq_nir`` and ``disp`` are accepted and not read.

        Args:
            lq (Tensor): LR VIS (n, 3, h, w), RGB in [0, 1].
            lq_nir (Tensor | None): Not read (the tiling code passes what it has).
            disp (Tensor | None): Not read.

        Returns:
            CSPSROutput: ``sr``; ``nir_sr`` and ``disp_r`` None, ``disp_l`` zeros (as CSPSR with ``cvm='none'``).
        """
        sr = self.net(lq)
        return CSPSROutput(sr, None, lq.new_zeros(lq.size(0), 1, *lq.shape[-2:]), None)


InferenceNet = Union[CSPSR, VisOnlySR]
"""What :func:`cspsr_arch.infer.model.load_inference_model` returns and :mod:`cspsr_arch.infer.tiling` runs."""
