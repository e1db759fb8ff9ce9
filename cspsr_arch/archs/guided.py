"""The interface every NIR-guided network of cspsr shares with :class:`~cspsr_arch.archs.cspsr_arch.CSPSR`.

The comparison networks of the paper's Table 2 (stereo SR, reference-based SR, multi-modal SR) take the same
inputs as CSPSR and give the same output, so that ``CSPSRModel`` trains them, the benchmark scores them and
``basicsr infer`` (whole images or tiles) runs them without knowing which one it has:

* ``forward(lq, lq_nir, disp=None, disp_r=None) -> CSPSROutput``: ``lq`` the LR VIS of the left view
  (n, 3, h, w) in [0, 1], ``lq_nir`` the NIR of the right view at ``nir_scale`` times the LR size (1: the LR
  size; the scale: a NIR at the output size); ``sr`` is the super-resolved VIS (n, 3, s*h, s*w); these
  networks have no NIR output (``nir_sr`` None) and no cross-view matching of their own (``disp_l`` zeros,
  ``disp_r`` None), so L_CSSC does not apply to them.
* Attributes read by the rest of the package: ``upscale``, ``nir_scale``, ``num_in_ch``, ``num_nir_ch``,
  ``cvm = 'none'`` and ``branches = 'single'`` (one output), and ``row_context``: True when the network
  relates every pixel to a whole row of the other view (stereo attention), so that tiled inference can
  only approximate it.
"""
from torch import Tensor, nn

from cspsr_arch.archs.cspsr_arch import CSPSROutput


class GuidedSR(nn.Module):
    """Base class: the checks and the output of a VIS network guided by a NIR image (see the module docstring).

    Args:
        upscale (int): Scale factor.
        nir_scale (int): The NIR enters at ``nir_scale`` x the LR size; it must divide ``upscale``.
        num_in_ch (int): VIS channels. Default: 3.
        num_nir_ch (int): NIR channels. Default: 1.
    """

    cvm = 'none'
    branches = 'single'
    row_context = False

    def __init__(self, upscale: int, nir_scale: int = 1, num_in_ch: int = 3, num_nir_ch: int = 1) -> None:
        super().__init__()
        if isinstance(nir_scale, bool) or not isinstance(nir_scale, int) or nir_scale < 1 or upscale % nir_scale:
            raise ValueError(f'nir_scale must be a positive integer that divides upscale ({upscale}), got '
                             f'{nir_scale!r}.')
        self.upscale, self.nir_scale = upscale, nir_scale
        self.num_in_ch, self.num_nir_ch = num_in_ch, num_nir_ch

    def check_inputs(self, lq: Tensor, lq_nir: Tensor) -> None:
        """ValueError naming both shapes unless ``lq`` is (n, num_in_ch, h, w) and ``lq_nir`` (n, num_nir_ch,
        nir_scale*h, nir_scale*w)."""
        name, f = type(self).__name__, self.nir_scale
        if lq.dim() != 4 or lq.size(1) != self.num_in_ch:
            raise ValueError(f'{name} expects the VIS input as (n, {self.num_in_ch}, h, w), got {tuple(lq.shape)}.')
        size = 'h, w' if f == 1 else f'{f}*h, {f}*w'
        if lq_nir.dim() != 4 or lq_nir.size(1) != self.num_nir_ch:
            raise ValueError(f'{name} expects the NIR input as (n, {self.num_nir_ch}, {size}), got '
                             f'{tuple(lq_nir.shape)}.')
        if tuple(lq_nir.shape[-2:]) != (f * lq.size(2), f * lq.size(3)) or lq.size(0) != lq_nir.size(0):
            raise ValueError(f'VIS {tuple(lq.shape)} and NIR {tuple(lq_nir.shape)} inputs differ in batch or size: '
                             f'{name} takes its NIR at nir_scale ({f}) x the VIS size.')

    def output(self, sr: Tensor, lq: Tensor) -> CSPSROutput:
        """The :class:`~cspsr_arch.archs.cspsr_arch.CSPSROutput` of a super-resolved VIS ``sr``."""
        return CSPSROutput(sr, None, lq.new_zeros(lq.size(0), 1, lq.size(2), lq.size(3)), None)
