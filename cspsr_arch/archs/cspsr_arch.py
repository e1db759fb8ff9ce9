"""CSPSR: cross-spectral prior super-resolution network (registered as ``CSPSR``)."""
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import ResidualBlockNoBN
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.branch import ShallowBranch, ShuffleHead
from cspsr_arch.archs.cross_view import (build_cvm_net, check_given_disparity, cvm_mode, learned_disparity,
                                         warp_nir_to_left)
from cspsr_arch.archs.cmsr_warp import sample_guide
from cspsr_arch.archs.dmf import DMF
from cspsr_arch.archs.guide_align import GuideAligner
from cspsr_arch.archs.hr_nir import check_nir_scale, guide_on_lr_grid, nir_skip_phases, output_nir_path
from cspsr_arch.archs.warp import WarpToLeft

BRANCH_MODES = ('dual', 'vis', 'concat')


class CSPSROutput(NamedTuple):
    """What :class:`CSPSR` returns (a tuple, so tracing and ONNX export see plain tensors).

    Attributes:
        sr (Tensor): Super-resolved VIS image I_SR, (n, 3, s*h, s*w), left view.
        nir_sr (Tensor | None): Super-resolved NIR image NIR_SR, (n, 1, s*h, s*w), in the left view
            (in the right view with ``cvm='none'``); None for the single-branch variants.
        disp_l (Tensor): Left disparity used for the warp, LR pixels, (n, 1, h, w) (zeros with
            ``cvm='none'``).
        disp_r (Tensor | None): Right disparity, LR pixels (predicted, given by the data set, or zeros).
    """

    sr: Tensor
    nir_sr: Optional[Tensor]
    disp_l: Tensor
    disp_r: Optional[Tensor]


@ARCH_REGISTRY.register()
class CSPSR(nn.Module):
    """Dual-branch VIS/NIR super-resolution with cross-view matching and T DMF modules.

    Pipeline: cross-view matching (CVM) brings the LR right-view NIR into the left (VIS) view,
    ``NIR_l(y, x) = NIR_r(y, x - disp_l(y, x))``, with a disparity that a cross-spectral stereo network
    predicts from the LR pair (``cvm='learned'``, :class:`CrossSpectralStereoNet`) or the data set gives
    (``'given'``); VIS and NIR branches extract shallow features; ``num_dmf`` DMF modules fuse them; a
    conv + pixel shuffle per branch gives I_SR (3 ch) and NIR_SR (1 ch), each added to the bicubic
    upsampling of its input (global skip). ``CSPSR()`` is the paper's model: T=15, C=64, x4, learned CVM.

    Choices where the paper is silent: the warped NIR is fed together with its validity mask (pixels
    whose match falls outside the right image are zero and flagged); both outputs use a global bicubic
    skip so the network learns residuals; residual DMF modules with a 1x1 NIR convolution (see
    :class:`~cspsr_arch.archs.dmf.DMF`); with ``cvm='none'`` the disparity is zero everywhere, so L_CSSC
    compares NIR_SR with the NIR ground truth of the same (right) view.

    The parameter count at the defaults is close to the paper's 1.298 M (``tests/test_archs/test_ablation.py`` keeps
    it within 10 %, and the SR network without the CVM within 5 %); the count per part is in
    docs/design_notes.md.

    Ablations of the paper (Table 4) are constructor arguments: ``branches='vis'`` (single-branch
    Baseline), ``branches='concat'`` with ``cvm='none'`` (w/ NIR: unaligned NIR concatenated at the
    input) or a CVM (w/ CVM), ``cvm='none'`` (w/o CVM), ``use_csft=False``, ``use_dyconv=False``.
    The single-branch body has ``num_dmf`` residual blocks (two 3x3 convs each) in place of the DMFs.

    Args:
        num_in_ch (int): VIS channels. Default: 3.
        num_nir_ch (int): NIR channels. Default: 1.
        num_feat (int): Channels C of each branch. Default: 64.
        num_dmf (int): Number T of DMF modules. Default: 15.
        kernel_size (int): Dynamic-convolution kernel size k. Default: 3.
        upscale (int): Scale factor, 2, 3 or 4. Default: 4.
        cvm (str): Cross-view matching: ``'learned'`` (disparity from the built-in
            :class:`CrossSpectralStereoNet`), ``'given'`` (warps by the disparity passed to ``forward``,
            from the data set), ``'none'`` or None (unaligned NIR, the paper's "w/o CVM"). Default: ``'learned'``.
        max_disp (int): Largest disparity (LR pixels) the learned CVM searches. Default: 24.
        min_disp (int): Smallest disparity the learned CVM searches. Default: 0.
        use_dyconv (bool): Dynamic convolution in DMF (False: ordinary conv, "w/o DyConv"). Default: True.
        use_csft (bool): CSFT in DMF (False: concatenation fusion, "w/o CSFT"). Default: True.
        norm (str): Normalisation inside CSFT: ``'batch'`` (paper), ``'instance'`` or ``'none'``. Default: ``'batch'``.
        global_skip (bool): Add the bicubic upsampled input to each output. Default: True.
        branches (str): ``'dual'`` (CSPSR), ``'vis'`` (single branch, VIS only) or ``'concat'`` (single
            branch on the VIS image concatenated with the NIR and its validity mask). Default: ``'dual'``.
        vis_path (str): VIS side of each DMF: ``'fused'`` (paper), ``'residual_block'`` (a VIS residual
            block plus the fused features) or ``'additive'`` (the same, the fused features scaled per channel
            from zero, NAFSSR's form: the network starts as the VIS-only one); see
            :class:`~cspsr_arch.archs.dmf.DMF`. Default: ``'fused'``.
        channel_pool (str): Features CSFT's channel gates pool: ``'normalised'`` (paper) or ``'raw'`` (before
            the normalisation, which otherwise leaves the gates nearly input-independent; see
            :class:`~cspsr_arch.archs.csft.CSFT`). Default: ``'normalised'``.
        nir_scale (int): The NIR enters at ``nir_scale`` x the LR size of the VIS (rigs whose NIR camera has
            the higher resolution; ``nir_scale = upscale``, a NIR at the output size, is the upper bound of
            NIR guidance). It must divide ``upscale``; ``branches='vis'`` takes 1 only. 1 is the paper's
            model, unchanged. With ``f = nir_scale > 1`` (:mod:`cspsr_arch.archs.hr_nir`): the learned CVM
            still matches on the LR grid, given the NIR reduced to the LR size by antialiased bicubic
            resizing (``F.interpolate(..., mode='bicubic', antialias=True)``, close to the MATLAB-style
            ``imresize`` that made the LR images of the data), so its weights and cost do not change;
            ``cvm='given'`` takes the LR disparity as for 1. The NIR is warped at its own resolution, by the
            LR disparity bilinearly upscaled (values times ``f``), so it keeps its detail through the warp;
            the warped NIR and its validity mask are then pixel-unshuffled onto the LR grid,
            ``(num_nir_ch + 1) * f**2`` channels into the NIR branch (or the concatenation of
            ``branches='concat'``), so every fine NIR sample reaches the network and none is averaged
            away. NIR_SR stays at ``upscale`` x LR; its global skip is the bicubic upsampling of the warped
            NIR by ``upscale / f`` (the warped NIR itself when ``f = upscale``), added before the pixel
            shuffle. ``disp_l``/``disp_r`` stay in LR pixels. Default: 1.
        nir_align (bool): After the cross-view matching, CMSR's learned alignment
            (:class:`~cspsr_arch.archs.guide_align.GuideAligner`: affine, CPAB and thin-plate maps predicted per
            pair, starting at the identity) moves the warped NIR and its mask onto the VIS bicubically upscaled
            to the NIR's size, at the NIR's own resolution, before the NIR branch. Why: the learned CVM's
            disparity is integer-coarse and, on real NIR, about 2 LR pixels off; CMSR guided by the HR NIR
            gains from its HR NIR only with this alignment behind the same CVM (docs/design_notes.md). The
            CSPSR paper has no such step; False is its model. L_CSSC still compares NIR_SR with the HR NIR
            warped by the disparity alone, so it pulls the alignment towards the identity by its small weight
            (a choice: the alignment has no NIR target of its own). Default: False.
        warp_window (int): With ``nir_align``: output pixels per window of the alignment, 0 for one map of the
            whole image. Trained on patches, set it to their size (see :class:`GuideAligner`'s ``window``;
            the aligner's window in NIR pixels is ``warp_window * nir_scale / upscale``). Default: 0.
        nir_path (bool): With the NIR at the output size (``nir_scale = upscale``): CMSR's guide branch
            (:func:`~cspsr_arch.archs.hr_nir.output_nir_path`, about 5 k parameters) from the matched NIR and
            its mask straight to the VIS output, added to it, starting at zero. Why: the SR loss then reaches
            the cross-view matching through a path where a misplaced NIR edge costs at once, as in CMSR,
            whose matching its training improves where CSPSR's worsens (docs/design_notes.md). The paper has
            no such path; False is its model. Default: False.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_nir_ch: int = 1,
                 num_feat: int = 64,
                 num_dmf: int = 15,
                 kernel_size: int = 3,
                 upscale: int = 4,
                 cvm: Optional[str] = 'learned',
                 max_disp: int = 24,
                 min_disp: int = 0,
                 use_dyconv: bool = True,
                 use_csft: bool = True,
                 norm: str = 'batch',
                 global_skip: bool = True,
                 branches: str = 'dual',
                 vis_path: str = 'fused',
                 channel_pool: str = 'normalised',
                 nir_scale: int = 1,
                 nir_align: bool = False,
                 warp_window: int = 0,
                 nir_path: bool = False) -> None:
        super().__init__()
        cvm = cvm_mode(cvm)
        if branches not in BRANCH_MODES:
            raise ValueError(f'branches must be one of {BRANCH_MODES}, got {branches!r}.')
        if upscale not in (2, 3, 4):
            raise ValueError(f'upscale must be 2, 3 or 4, got {upscale}.')
        if branches == 'vis' and cvm != 'none':
            raise ValueError("branches='vis' does not use the NIR image: set cvm='none'.")
        self.nir_scale = check_nir_scale(nir_scale, upscale, branches)
        if warp_window and not nir_align or (warp_window * nir_scale) % upscale or (nir_align and branches == 'vis'):
            raise ValueError(f'warp_window is the window of nir_align (here {nir_align}), in output pixels, a multiple '
                             f'of upscale / nir_scale = {upscale // nir_scale}; branches="vis" has no NIR to align. '
                             f'Got warp_window={warp_window}, branches={branches!r}.')
        if nir_path and (nir_scale != upscale or branches == 'vis'):
            raise ValueError(f'nir_path takes the NIR at the output size: set nir_scale to upscale ({upscale}) '
                             f'and branches to dual or concat; got nir_scale={nir_scale}, branches={branches!r}.')
        self.nir_path = output_nir_path(num_nir_ch, num_in_ch) if nir_path else None
        self.nir_aligner = GuideAligner(num_in_ch + num_nir_ch, window=warp_window * nir_scale // upscale) \
            if nir_align else None
        self.num_in_ch, self.num_nir_ch = num_in_ch, num_nir_ch
        self.upscale, self.cvm, self.global_skip, self.branches = upscale, cvm, global_skip, branches
        if cvm == 'learned':
            self.cvm_net = build_cvm_net(num_in_ch, num_nir_ch, min_disp, max_disp)
        if cvm != 'none':  # a module without weights: a forward hook on it sees the warped NIR and its mask
            self.warp_nir = WarpToLeft()
        guide_ch = (num_nir_ch + 1) * nir_scale * nir_scale  # NIR + validity mask of the warp, unshuffled to LR
        vis_in = num_in_ch + (guide_ch if branches == 'concat' else 0)
        self.branch_vis = ShallowBranch(vis_in, num_feat)
        if branches == 'dual':
            self.branch_nir = ShallowBranch(guide_ch, num_feat)
            self.dmfs = nn.ModuleList(
                [DMF(num_feat, kernel_size, use_dyconv=use_dyconv, use_csft=use_csft, norm=norm, vis_path=vis_path,
                     channel_pool=channel_pool) for _ in range(num_dmf)])
            self.head_nir = ShuffleHead(num_feat, num_nir_ch, upscale)
        else:
            self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat=num_feat) for _ in range(num_dmf)])
        self.conv_after_vis = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.head_vis = ShuffleHead(num_feat, num_in_ch, upscale)
        # Channels-last (NHWC) weights and activations: oneDNN then skips the layout reorders around each
        # convolution, which cost CSPSR's many small convolutions (64->1, 64->9, 1x1) as much as the
        # arithmetic, so the whole network runs markedly faster on the CPU (measured: docs/design_notes.md).
        self.to(memory_format=torch.channels_last)

    def _check_inputs(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor]) -> None:
        f = self.nir_scale
        if lq.dim() != 4 or lq.size(1) != self.num_in_ch:
            raise ValueError(f'CSPSR expects the VIS input as (n, {self.num_in_ch}, h, w), got {tuple(lq.shape)}.')
        if lq_nir.dim() != 4 or lq_nir.size(1) != self.num_nir_ch:
            size = 'h, w' if f == 1 else f'{f}*h, {f}*w'
            raise ValueError(f'CSPSR expects the NIR input as (n, {self.num_nir_ch}, {size}), '
                             f'got {tuple(lq_nir.shape)}.')
        if f == 1:
            if lq.shape[-2:] != lq_nir.shape[-2:] or lq.size(0) != lq_nir.size(0):
                raise ValueError(f'VIS {tuple(lq.shape)} and NIR {tuple(lq_nir.shape)} inputs differ in batch or size.')
        elif tuple(lq_nir.shape[-2:]) != (f * lq.size(2), f * lq.size(3)) or lq.size(0) != lq_nir.size(0):
            raise ValueError(f'VIS {tuple(lq.shape)} and NIR {tuple(lq_nir.shape)} inputs differ in batch or size: '
                             f'this network has nir_scale={f}, so the NIR must be nir_scale times the VIS size, '
                             f'{f * lq.size(2)}x{f * lq.size(3)} (HxW) for a {lq.size(2)}x{lq.size(3)} VIS.')
        if self.cvm == 'given':
            check_given_disparity('CSPSR', lq, disp)

    def match(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor],
              disp_r: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        """Left and right disparity (LR pixels) that cross-view matching uses for this pair.

        With ``nir_scale > 1`` the learned CVM matches the VIS with the NIR reduced to the LR size
        (:func:`~cspsr_arch.archs.hr_nir.nir_on_lr_grid`).
        """
        if self.cvm == 'learned':
            return learned_disparity(self.cvm_net, lq, lq_nir, self.nir_scale)
        if self.cvm == 'given':
            return disp, disp_r
        zeros = lq_nir.new_zeros(lq_nir.size(0), 1, *lq.shape[-2:])
        return zeros, zeros

    def forward(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None,
                disp_r: Optional[Tensor] = None) -> CSPSROutput:
        """Super-resolve a left VIS image with the help of a right NIR image.

        Args:
            lq (Tensor): LR VIS, left view, (n, 3, h, w) in [0, 1].
            lq_nir (Tensor): NIR, right view, (n, 1, f*h, f*w) in [0, 1], ``f = nir_scale`` (1: the LR size).
            disp (Tensor | None): Left disparity in LR pixels, (n, 1, h, w); needed when ``cvm='given'``
                (ignored otherwise).
            disp_r (Tensor | None): Right disparity in LR pixels; with ``cvm='given'`` passed through for
                the L_CSSC loss.

        Returns:
            CSPSROutput: ``(sr, nir_sr, disp_l, disp_r)``.
        """
        self._check_inputs(lq, lq_nir, disp)
        lq, lq_nir = lq.contiguous(memory_format=torch.channels_last), lq_nir.contiguous(memory_format=torch.channels_last)
        disp_l, disp_r = self.match(lq, lq_nir, disp, disp_r)
        if self.cvm == 'none':
            nir, valid = lq_nir, torch.ones_like(lq_nir[:, :1])
        else:
            nir, valid = warp_nir_to_left(self.warp_nir, lq_nir, disp_l, self.nir_scale)
        if self.nir_aligner is not None:
            nir, valid = self._align_nir(lq, nir, valid)
        if self.nir_scale != 1:
            return self._forward_fine_nir(lq, nir, valid, disp_l, disp_r)
        nir_sr = None
        if self.branches == 'dual':
            feat_vis = self.branch_vis(lq)
            feat_nir = self.branch_nir(torch.cat([nir, valid], dim=1))
            deep_vis, deep_nir = feat_vis, feat_nir
            for dmf in self.dmfs:
                deep_vis, deep_nir = dmf(deep_vis, deep_nir)
            nir_sr = self.head_nir(deep_nir + feat_nir, nir if self.global_skip else None)
        else:
            feat_vis = self.branch_vis(lq if self.branches == 'vis' else torch.cat([lq, nir, valid], dim=1))
            deep_vis = self.body(feat_vis)
        # the global skips (bicubic VIS and warped NIR) are added inside the heads, before the pixel shuffle
        sr = self.head_vis(self.conv_after_vis(deep_vis).add_(feat_vis), lq if self.global_skip else None)
        return CSPSROutput(sr, nir_sr, disp_l, disp_r)

    def _align_nir(self, lq: Tensor, nir: Tensor, valid: Tensor) -> Tuple[Tensor, Tensor]:
        """``nir_align``: the NIR and its validity mask moved by the learned alignment onto the VIS upscaled to
        the NIR's size (one sampling grid for both)."""
        vis = lq if self.nir_scale == 1 else F.interpolate(lq, size=nir.shape[-2:], mode='bicubic', align_corners=False)
        grid = self.nir_aligner.windowed_grid(vis, nir)
        return sample_guide(nir, grid), sample_guide(valid, grid)

    def _forward_fine_nir(self, lq: Tensor, nir: Tensor, valid: Tensor, disp_l: Tensor,
                          disp_r: Optional[Tensor]) -> CSPSROutput:
        """The rest of :meth:`forward` for ``nir_scale > 1``: ``nir``/``valid`` are the warped NIR and its mask
        at ``nir_scale`` x LR, pixel-unshuffled onto the LR grid here (see :mod:`cspsr_arch.archs.hr_nir`)."""
        guide = guide_on_lr_grid(nir, valid, self.nir_scale)
        nir_sr = None
        if self.branches == 'dual':
            feat_vis = self.branch_vis(lq)
            feat_nir = self.branch_nir(guide)
            deep_vis, deep_nir = feat_vis, feat_nir
            for dmf in self.dmfs:
                deep_vis, deep_nir = dmf(deep_vis, deep_nir)
            skip = nir_skip_phases(guide, nir, self.nir_scale, self.upscale) if self.global_skip else None
            nir_sr = self.head_nir.forward_phases(deep_nir + feat_nir, skip)
        else:  # 'concat' ('vis' takes nir_scale 1 only)
            feat_vis = self.branch_vis(torch.cat([lq, guide], dim=1))
            deep_vis = self.body(feat_vis)
        sr = self.head_vis(self.conv_after_vis(deep_vis).add_(feat_vis), lq if self.global_skip else None)
        if self.nir_path is not None:
            sr = sr + self.nir_path(torch.cat([nir, valid], dim=1))
        return CSPSROutput(sr, nir_sr, disp_l, disp_r)
