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
  ``cvm`` and ``branches = 'single'`` (one output), and ``row_context``: True when the network relates
  every pixel to a whole row of the other view (stereo attention), so that tiled inference can only
  approximate it.

Cross-view matching in front (``cvm``, the same modes as CSPSR's): the paper aligns "the NIR-VIS images ...
first through the cross-spectral stereo matching model before SR" for the networks that take the NIR as a
guide image rather than as a second view (reference-based and multi-modal SR). With ``cvm='learned'`` a
network gets CSPSR's learned CVM (:class:`~cspsr_arch.archs.cross_spectral_stereo_arch.CrossSpectralStereoNet`
under ``cvm_net``, pre-trained and loaded exactly as CSPSR's, and fine-tuned by the SR loss through the warp),
with ``cvm='given'`` the data set's disparity; :meth:`GuidedSR.align` then warps the right-view NIR onto the
left view, ``NIR_l(i, j) = NIR_r(i, j - disp_l(i, j))`` (a NIR above the LR size at its own resolution by the
upscaled disparity, as CSPSR's HR NIR), and the network takes that aligned NIR. Pixels the right view does
not see become 0, as in CSPSR's warp; unlike CSPSR these networks take no validity mask (their inputs are
fixed by their papers). ``disp_l``/``disp_r`` of the output are then the disparities used.
"""
from typing import Optional, Tuple

from torch import Tensor, nn

from cspsr_arch.archs.cross_view import (build_cvm_net, check_given_disparity, cvm_mode, learned_disparity,
                                         warp_nir_to_left)
from cspsr_arch.archs.cspsr_arch import CSPSROutput
from cspsr_arch.archs.warp import WarpToLeft


class GuidedSR(nn.Module):
    """Base class: the checks and the output of a VIS network guided by a NIR image (see the module docstring).

    Args:
        upscale (int): Scale factor.
        nir_scale (int): The NIR enters at ``nir_scale`` x the LR size; it must divide ``upscale``.
        num_in_ch (int): VIS channels. Default: 3.
        num_nir_ch (int): NIR channels. Default: 1.
        cvm (str | None): Cross-view matching in front of the network (see the module docstring): ``'none'``
            (the right-view NIR as given), ``'learned'`` or ``'given'``. Default: 'none'.
        max_disp (int): Largest disparity (LR pixels) the learned CVM searches. Default: 24.
        min_disp (int): Smallest disparity it searches. Default: 0.
    """

    cvm = 'none'  # the class default; an instance built with another sets its own
    branches = 'single'
    row_context = False

    def __init__(self, upscale: int, nir_scale: int = 1, num_in_ch: int = 3, num_nir_ch: int = 1,
                 cvm: Optional[str] = 'none', max_disp: int = 24, min_disp: int = 0) -> None:
        super().__init__()
        self.cvm = cvm = cvm_mode(cvm)
        if cvm == 'learned':
            self.cvm_net = build_cvm_net(num_in_ch, num_nir_ch, min_disp, max_disp)
        if cvm != 'none':  # no weights; a forward hook on it sees the aligned NIR
            self.warp_nir = WarpToLeft()
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

    def align(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None,
              disp_r: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """The NIR the network takes, and the left and right disparities (LR pixels) that aligned it.

        Returns:
            ``lq_nir`` itself and (None, None) with ``cvm='none'``; else the right-view NIR warped onto the
            left view at its own resolution, and the disparities (the learned CVM's, or ``disp``/``disp_r``).
        """
        if self.cvm == 'none':
            return lq_nir, None, None
        if self.cvm == 'learned':
            disp_l, disp_r = learned_disparity(self.cvm_net, lq, lq_nir, self.nir_scale)
        else:
            check_given_disparity(type(self).__name__, lq, disp)
            disp_l = disp
        return warp_nir_to_left(self.warp_nir, lq_nir, disp_l, self.nir_scale)[0], disp_l, disp_r

    def output(self, sr: Tensor, lq: Tensor, disp_l: Optional[Tensor] = None,
               disp_r: Optional[Tensor] = None) -> CSPSROutput:
        """The :class:`~cspsr_arch.archs.cspsr_arch.CSPSROutput` of a super-resolved VIS ``sr``, with the
        disparities of :meth:`align` (zeros and None without cross-view matching)."""
        if disp_l is None:
            disp_l = lq.new_zeros(lq.size(0), 1, lq.size(2), lq.size(3))
        return CSPSROutput(sr, None, disp_l, disp_r)
