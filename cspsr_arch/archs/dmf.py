"""DMF module (dynamic convolution + CSFT + two convolutions), repeated T times in CSPSR."""
from typing import Tuple

import torch
from basicsr.archs.arch_util import ResidualBlockNoBN
from torch import Tensor, nn

from cspsr_arch.archs.csft import CSFT
from cspsr_arch.archs.dynamic_conv import DynamicConv
from cspsr_arch.archs.fused_dmf import dyconv_csft

VIS_PATHS = ('fused', 'residual_block', 'additive')


class ConcatFusion(nn.Module):
    """Plain fusion for the "w/o CSFT" ablation: a 1x1 convolution on concat(F_vis, F'_nir).

    Args:
        num_feat (int): Channels C of each branch.
    """

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * num_feat, num_feat, 1)

    def forward(self, feat_vis: Tensor, feat_nir: Tensor) -> Tensor:
        return self.conv(torch.cat([feat_vis, feat_nir], dim=1))


class PlainNIRConv(nn.Module):
    """Ordinary 3x3 convolution on F_nir, in place of the dynamic convolution ("w/o DyConv" ablation).

    Args:
        num_feat (int): Channels C.
    """

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, feat_vis: Tensor, feat_nir: Tensor) -> Tensor:
        return self.conv(feat_nir)


class DMF(nn.Module):
    """Dynamic multi-spectral fusion module.

    1. ``F'_nir = DynamicConv(F_vis, F_nir)`` (or a plain conv without ``use_dyconv``);
    2. ``F'_vis = CSFT(F_vis, F'_nir)`` (or a 1x1 conv on the concatenation without ``use_csft``);
    3. ``F_vis <- F_vis + conv3x3(act(F'_vis))``, ``F_nir <- F_nir + conv1x1(act(F'_nir))``.

    Our readings where the paper only says "two convolutions give the next features": residual
    connections in step 3, which let 15 stacked modules train from scratch at lr 1e-4 without warm-up;
    and a 1x1 convolution on the NIR side. The NIR features were already filtered spatially by the
    dynamic convolution, so ``conv1x1(dyconv(.))`` is a (content-adaptive) separable 3x3 convolution;
    with two full 3x3 convolutions CSPSR would be far above the paper's parameter count, with the 1x1
    one it is close to it (counts: docs/design_notes.md).
    The VIS side, which makes the output, keeps its 3x3 convolution.

    ``vis_path='residual_block'`` (not in the paper) changes step 3 of the VIS side to
    ``F_vis <- ResBlock(F_vis) + conv1x1(act(F'_vis))``: the VIS features keep a path of their own, the same
    residual block as the VIS-only network's, and the fused features are added to it. In the paper's form
    every change of F_vis passes through the product of CSFT's gates (``w_s1`` multiplies both terms), so
    the VIS branch has one 3x3 convolution per module behind those gates where a VIS-only network of the
    same depth has two ungated ones; with the separate path, switching off the fusion leaves exactly the
    VIS-only network. It costs one 3x3 convolution more per module (a 1x1 one replaces the fused 3x3 one).

    ``vis_path='additive'`` (not in the paper) lets the NIR in the way NAFSSR lets the other view in (Chu et
    al., "NAFSSR: Stereo Image Super-Resolution Using NAFNet", CVPRW 2022: each stereo cross-attention adds
    its output to the view's own features times a per-channel scale that starts at zero):
    ``F_vis <- ResBlock(F_vis) + beta * conv1x1(act(F'_vis))``, ``beta`` per channel, zero at the start. The
    network starts as exactly the VIS-only network and takes in the fused NIR features only as far as
    training finds them worth it. In the paper's form the VIS features are rebuilt from the fused ones in
    every module from the first step, so the VIS output leans on the NIR whether the NIR helps or not.

    Args:
        num_feat (int): Channels C. Default: 64.
        kernel_size (int): Size of the dynamic kernels. Default: 3.
        use_dyconv (bool): Dynamic convolution (True) or an ordinary convolution. Default: True.
        use_csft (bool): CSFT unit (True) or concatenation fusion. Default: True.
        norm (str): Normalisation inside CSFT: ``'batch'``, ``'instance'`` or ``'none'``. Default: ``'batch'``.
        vis_path (str): ``'fused'`` (paper: the VIS features change only through the fused features),
            ``'residual_block'`` (a VIS residual block plus the fused features) or ``'additive'`` (the same,
            the fused features scaled per channel from zero). Default: ``'fused'``.
        channel_pool (str): What CSFT's channel gates pool, see :class:`~cspsr_arch.archs.csft.CSFT`.
            Default: ``'normalised'`` (paper).
    """

    def __init__(self,
                 num_feat: int = 64,
                 kernel_size: int = 3,
                 use_dyconv: bool = True,
                 use_csft: bool = True,
                 norm: str = 'batch',
                 vis_path: str = 'fused',
                 channel_pool: str = 'normalised') -> None:
        super().__init__()
        if vis_path not in VIS_PATHS:
            raise ValueError(f'vis_path must be one of {VIS_PATHS}, got {vis_path!r}.')
        self.vis_path = vis_path
        self.dyconv = DynamicConv(num_feat, kernel_size) if use_dyconv else PlainNIRConv(num_feat)
        self.fusion = CSFT(num_feat, norm=norm, channel_pool=channel_pool) if use_csft else ConcatFusion(num_feat)
        self.act = nn.LeakyReLU(0.1, inplace=False)
        self.act_ = nn.LeakyReLU(0.1, inplace=True)
        if vis_path == 'fused':
            self.conv_vis = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        else:
            self.block_vis = ResidualBlockNoBN(num_feat=num_feat)
            self.conv_vis = nn.Conv2d(num_feat, num_feat, 1)
        if vis_path == 'additive':
            self.beta_vis = nn.Parameter(torch.zeros(1, num_feat, 1, 1))
        self.conv_nir = nn.Conv2d(num_feat, num_feat, 1)

    def forward(self, feat_vis: Tensor, feat_nir: Tensor) -> Tuple[Tensor, Tensor]:
        if isinstance(self.dyconv, DynamicConv) and isinstance(self.fusion, CSFT):
            nir, vis = dyconv_csft(self.dyconv, self.fusion, feat_vis, feat_nir)  # steps 1 and 2 in fewer passes
        else:
            nir = self.dyconv(feat_vis, feat_nir)
            vis = self.fusion(feat_vis, nir)
        vis = self.act_(vis)  # in place: F'_vis is needed by nothing else
        nir = self.act(nir) if torch.is_grad_enabled() else self.act_(nir)  # F'_nir: kept for CSFT's backward pass
        # residuals added in place into the fresh convolution outputs: one feature map less to allocate
        base_vis = feat_vis if self.vis_path == 'fused' else self.block_vis(feat_vis)
        update_vis = self.conv_vis(vis)
        if self.vis_path == 'additive':
            update_vis = update_vis * self.beta_vis
        return update_vis.add_(base_vis), self.conv_nir(nir).add_(feat_nir)
