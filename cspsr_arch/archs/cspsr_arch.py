"""CSPSR: cross-spectral prior super-resolution network (registered as ``CSPSR``)."""
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.branch import ShallowBranch, ShuffleHead
from cspsr_arch.archs.dmf import DMF
from cspsr_arch.archs.warp import warp_to_left

CVM_MODES = ('given', 'none')


class CSPSROutput(NamedTuple):
    """What :class:`CSPSR` returns (a tuple, so tracing and ONNX export see plain tensors).

    Attributes:
        sr (Tensor): Super-resolved VIS image I_SR, (n, 3, s*h, s*w), left view.
        nir_sr (Tensor): Super-resolved NIR image NIR_SR, (n, 1, s*h, s*w), warped to the left view.
        disp_l (Tensor | None): Left disparity used for the warp, LR pixels, (n, 1, h, w).
        disp_r (Tensor | None): Right disparity, LR pixels (given by the data set), or None.
    """

    sr: Tensor
    nir_sr: Tensor
    disp_l: Optional[Tensor]
    disp_r: Optional[Tensor]


@ARCH_REGISTRY.register()
class CSPSR(nn.Module):
    """Dual-branch VIS/NIR super-resolution with cross-view matching and T DMF modules.

    Pipeline: the LR right-view NIR is warped into the left (VIS) view with the left disparity
    (``NIR_l(y, x) = NIR_r(y, x - disp_l(y, x))``, cross-view matching); VIS and NIR branches extract
    shallow features; ``num_dmf`` DMF modules fuse them; a conv + pixel shuffle per branch gives
    I_SR (3 ch) and NIR_SR (1 ch), each added to the bicubic upsampling of its input (global skip).

    Choices where the paper is silent: the warped NIR is fed together with its validity mask (pixels
    whose match falls outside the right image are zero and flagged), and both outputs use a global
    bicubic skip so the network learns residuals.

    Args:
        num_in_ch (int): VIS channels. Default: 3.
        num_nir_ch (int): NIR channels. Default: 1.
        num_feat (int): Channels C of each branch. Default: 64.
        num_dmf (int): Number T of DMF modules. Default: 15.
        kernel_size (int): Dynamic-convolution kernel size k. Default: 3.
        upscale (int): Scale factor, 2, 3 or 4. Default: 4.
        cvm (str): Cross-view matching: ``'given'`` warps by the disparity passed to ``forward`` (from the
            data set), ``'none'`` uses the unaligned NIR (the paper's "w/o CVM"). Default: ``'given'``.
        use_dyconv (bool): Dynamic convolution in DMF (False: ordinary conv, "w/o DyConv"). Default: True.
        use_csft (bool): CSFT in DMF (False: concatenation fusion, "w/o CSFT"). Default: True.
        norm (str): Normalisation inside CSFT: ``'batch'`` (paper), ``'instance'`` or ``'none'``. Default: ``'batch'``.
        global_skip (bool): Add the bicubic upsampled input to each output. Default: True.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_nir_ch: int = 1,
                 num_feat: int = 64,
                 num_dmf: int = 15,
                 kernel_size: int = 3,
                 upscale: int = 4,
                 cvm: str = 'given',
                 use_dyconv: bool = True,
                 use_csft: bool = True,
                 norm: str = 'batch',
                 global_skip: bool = True) -> None:
        super().__init__()
        if cvm not in CVM_MODES:
            raise ValueError(f'cvm must be one of {CVM_MODES}, got {cvm!r}.')
        if upscale not in (2, 3, 4):
            raise ValueError(f'upscale must be 2, 3 or 4, got {upscale}.')
        self.num_in_ch, self.num_nir_ch = num_in_ch, num_nir_ch
        self.upscale, self.cvm, self.global_skip = upscale, cvm, global_skip
        self.branch_vis = ShallowBranch(num_in_ch, num_feat)
        self.branch_nir = ShallowBranch(num_nir_ch + 1, num_feat)  # NIR + validity mask of the warp
        self.dmfs = nn.ModuleList(
            [DMF(num_feat, kernel_size, use_dyconv=use_dyconv, use_csft=use_csft, norm=norm) for _ in range(num_dmf)])
        self.conv_after_vis = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_after_nir = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.head_vis = ShuffleHead(num_feat, num_in_ch, upscale)
        self.head_nir = ShuffleHead(num_feat, num_nir_ch, upscale)

    def _check_inputs(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor]) -> None:
        if lq.dim() != 4 or lq.size(1) != self.num_in_ch:
            raise ValueError(f'CSPSR expects the VIS input as (n, {self.num_in_ch}, h, w), got {tuple(lq.shape)}.')
        if lq_nir.dim() != 4 or lq_nir.size(1) != self.num_nir_ch:
            raise ValueError(f'CSPSR expects the NIR input as (n, {self.num_nir_ch}, h, w), got {tuple(lq_nir.shape)}.')
        if lq.shape[-2:] != lq_nir.shape[-2:] or lq.size(0) != lq_nir.size(0):
            raise ValueError(f'VIS {tuple(lq.shape)} and NIR {tuple(lq_nir.shape)} inputs differ in batch or size.')
        if self.cvm == 'given':
            if disp is None:
                raise ValueError("CSPSR(cvm='given') needs the left disparity: forward(lq, lq_nir, disp). Use a data "
                                 "set with disparity (dataroot_disp) or build the network with cvm='none'.")
            if disp.shape != (lq.size(0), 1, lq.size(2), lq.size(3)):
                raise ValueError(f'Disparity must be (n, 1, h, w) at the LR size {tuple(lq.shape[-2:])}, '
                                 f'got {tuple(disp.shape)}.')

    def forward(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None,
                disp_r: Optional[Tensor] = None) -> CSPSROutput:
        """Super-resolve a left VIS image with the help of a right NIR image.

        Args:
            lq (Tensor): LR VIS, left view, (n, 3, h, w) in [0, 1].
            lq_nir (Tensor): LR NIR, right view, (n, 1, h, w) in [0, 1].
            disp (Tensor | None): Left disparity in LR pixels, (n, 1, h, w); needed when ``cvm='given'``.
            disp_r (Tensor | None): Right disparity in LR pixels; passed through for the L_CSSC loss.

        Returns:
            CSPSROutput: ``(sr, nir_sr, disp_l, disp_r)``.
        """
        self._check_inputs(lq, lq_nir, disp)
        if self.cvm == 'given':
            nir, valid = warp_to_left(lq_nir, disp)
        else:
            nir, valid = lq_nir, torch.ones_like(lq_nir[:, :1])
        feat_vis = self.branch_vis(lq)
        feat_nir = self.branch_nir(torch.cat([nir, valid], dim=1))
        deep_vis, deep_nir = feat_vis, feat_nir
        for dmf in self.dmfs:
            deep_vis, deep_nir = dmf(deep_vis, deep_nir)
        sr = self.head_vis(self.conv_after_vis(deep_vis) + feat_vis)
        nir_sr = self.head_nir(self.conv_after_nir(deep_nir) + feat_nir)
        if self.global_skip:
            size = sr.shape[-2:]
            sr = sr + F.interpolate(lq, size=size, mode='bicubic', align_corners=False)
            nir_sr = nir_sr + F.interpolate(nir, size=size, mode='bicubic', align_corners=False)
        return CSPSROutput(sr, nir_sr, disp if self.cvm == 'given' else None, disp_r)
