"""CMSR, the multi-modal SR network of the comparison (registered as ``CMSR``).

G. Shacht, D. Danon, S. Fogel, D. Cohen-Or, "Single Pair Cross-Modality Super Resolution", CVPR 2021
(arXiv:2004.09965, first titled "Weakly Aligned Joint Cross-Modality Super Resolution"); official code:
github.com/camillarhodes/CMSR (TensorFlow, built on ZSSR), its alignment from its fork of ``ddtn``.

The network, as the official code builds it (``ZSSR.build_network``, ``configs.Config``):

* upsampling branch (ZSSR's network): the target image bicubically upscaled to the output size, then 8 plain
  3x3 convolutions, 64 channels, ReLU between them and none after the last, no biases; its output is added
  to the upscaled input (residual learning);
* guide branch: the guide, deformed by the learned "internal transformer" (:mod:`cspsr_arch.archs.cmsr_warp`:
  affine, CPAB and thin-plate-spline maps, identity at the start), through ``depth_guider`` convolutions
  (3x3, 16 channels, ReLU; the last a 1x1 to the target's channels, no ReLU, no biases) whose output is
  *added* to the upsampling branch's (the fusion); the cross-modality configurations of the code (thermal,
  depth) set ``depth_guider = 4``;
* weights drawn from N(0, 0.1 / fan_in) (ZSSR's ``init_variance``: small, so the output starts near the
  bicubic upscaling); L1 loss; the upsampling branch is optimised on the loss of its own output, the guide
  branch and the transformers on that of the sum; the whole is trained on the one input pair (zero-shot,
  with augmentations, back-projection and a geometric self-ensemble at test time).

The CSPSR paper instead "retrains ... the multi-modal SR (CMSR) model on our training data", the target being
the LR VIS image and the guide "the bicubic upscaled NIR image instead of the HR VIS image"; "CMSR (w/ HR
NIR)" takes the HR NIR as the guide (an upper bound). So this is CMSR's network trained like every network of
the comparison (supervised, ``CSPSRModel``'s pixel loss, MSE, on the final output only): the single-pair
training, its two losses and its test-time steps are not part of it. One change that training forces: CMSR's
transformer parameters are free variables fitted to its one pair; learnt over a data set they would be one
fixed warp for every pair, so here a small localisation network (a spatial transformer, as ddtn's layers
are meant to be used) predicts them from each pair (:class:`GuideAligner`), its output layers zero and its
offsets the identity (ddtn's initialisation), so training starts from CMSR's own starting point. Which guide: the CSPSR paper aligns
the NIR to the VIS view "through the cross-spectral stereo matching model before SR", so the option files set
``cvm: learned`` (CSPSR's learned CVM in front, :class:`~cspsr_arch.archs.guided.GuidedSR`, which follows a
stereo pair's depth-dependent disparity); CMSR's own transformer then refines what is left. It is a global,
smooth deformation (CMSR's setting: weakly aligned pairs), so on its own (``cvm='none'``, the network's
default, the right-view NIR as given: an ablation) it cannot follow a stereo pair's disparity.

The paper's network is tiny by design (single-pair training): the defaults are its sizes (about 0.23 M
parameters with the localisation network; the paper states no count, ``tests/test_archs/test_cmsr.py``
counts the layers its code lists); ``num_feat``, ``num_layers``, ``guide_feat`` and ``guide_layers`` scale it.
All its convolutions run at the output size (ZSSR's design), so it costs far more per parameter than the
networks that work at the LR size.
"""
from typing import Optional, Tuple

import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.cspsr_arch import CSPSROutput
from cspsr_arch.archs.guide_align import GuideAligner
from cspsr_arch.archs.guided import GuidedSR

INIT_VARIANCE = 0.1  # ZSSR's init_variance: weights ~ N(0, 0.1 / fan_in)


def plain_convs(in_ch: int, width: int, out_ch: int, depth: int, last_kernel: int = 3) -> nn.Sequential:
    """``depth`` bias-free convolutions ``in_ch -> width -> ... -> out_ch`` with ReLU between, ZSSR's filters.

    Args:
        in_ch: Input channels.
        width: Channels between the convolutions.
        out_ch: Output channels.
        depth: Number of convolutions, at least 2 (ZSSR's first, ``depth - 2`` middle and last filters).
        last_kernel: Size of the last convolution (3 in the upsampling branch, 1 in the guide branch).
    """
    layers = []
    for k in range(depth - 1):
        layers += [nn.Conv2d(in_ch if k == 0 else width, width, 3, 1, 1, bias=False), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(width, out_ch, last_kernel, 1, last_kernel // 2, bias=False))
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            fan_in = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
            nn.init.normal_(layer.weight, 0.0, (INIT_VARIANCE / fan_in)**0.5)
    return nn.Sequential(*layers)


@ARCH_REGISTRY.register()
class CMSR(GuidedSR):
    """CMSR's network (see the module docstring): ``sr = up + f(up) + g(align(guide))`` at the output size.

    ``up`` is the LR VIS image bicubically upscaled (``F.interpolate(..., mode='bicubic',
    align_corners=False)``), ``f`` the upsampling branch, ``g`` the guide branch and ``align`` the learned
    transformer (:class:`GuideAligner`). The guide is the right-view NIR at the output size: with
    ``nir_scale = 1`` the LR NIR bicubically upscaled by ``upscale`` (the CSPSR paper's CMSR), with
    ``nir_scale = upscale`` the given HR NIR itself ("CMSR (w/ HR NIR)"), in between upscaled by
    ``upscale // nir_scale``. With ``cvm`` other than ``'none'`` the guide is the NIR aligned to the left view by
the CVM in front (:meth:`~cspsr_arch.archs.guided.GuidedSR.align`), which CMSR's transformer then refines.

    Choices where the paper is silent: bicubic upscaling by ``F.interpolate`` (ZSSR's own MATLAB-like
    ``imresize`` has the cubic kernel's a = -0.5; PyTorch's -0.75 is what the rest of cspsr uses); one
    resampling of the guide by the composed maps; the localisation network (see :class:`GuideAligner`).
    ``row_context`` is True: the localisation network pools the whole image (or each ``warp_window``), so a
    tile's warp differs from the whole image's and tiled inference only approximates the network.

    Args:
        num_in_ch (int): VIS channels (CMSR's target image). Default: 3.
        num_nir_ch (int): NIR channels (CMSR's guide). Default: 1.
        upscale (int): Scale factor, an integer >= 2 (CMSR upscales any integer factor). Default: 4.
        nir_scale (int): The NIR enters at ``nir_scale`` x the LR size; it must divide ``upscale``. Default: 1.
        num_feat (int): Channels of the upsampling branch (CMSR/ZSSR: 64). Default: 64.
        num_layers (int): Convolutions of the upsampling branch (CMSR/ZSSR: 8). Default: 8.
        guide_feat (int): Channels of the guide branch (CMSR: 16). Default: 16.
        guide_layers (int): Convolutions of the guide branch, the last 1x1 (CMSR's thermal and depth
            configurations: 4). Default: 4.
        align (bool): Learned alignment of the guide (False: the guide as given, an ablation). Default: True.
        loc_feat (int): Channels of the localisation network (no counterpart in the paper). Default: 16.
        loc_layers (int): Stride-2 convolutions of the localisation network. Default: 4.
        tps_grid (int): TPS control points per axis (CMSR's ddtn fork: 16; 0: no TPS). Default: 16.
        cpab_cells (int): CPAB cells per axis (CMSR: 4; 0: no CPAB). Default: 4.
        cpab_steps (int): Euler steps of the CPAB integration (ddtn: closed form); 8 steps err by about 1 %
            of the displacement (measured: 0.13 px on a 12-pixel flow, against 1024 steps). Default: 8.
        warp_window (int): Output pixels per window of the learned alignment, 0 for the whole image (CMSR's own:
            its one training pair is its test image). Trained on patches, set it to their size (the option files
            and the benchmark do): see :class:`GuideAligner`'s ``window``. Default: 0.
        cvm (str | None): Cross-view matching in front of CMSR's own alignment: ``'none'`` (the right-view NIR
            as given), ``'learned'`` or ``'given'`` (:class:`~cspsr_arch.archs.guided.GuidedSR`). Default: 'none'.
        max_disp (int): Largest disparity (LR pixels) of the learned CVM. Default: 24.
        min_disp (int): Smallest disparity of the learned CVM. Default: 0.
    """

    row_context = True

    def __init__(self,
                 num_in_ch: int = 3,
                 num_nir_ch: int = 1,
                 upscale: int = 4,
                 nir_scale: int = 1,
                 num_feat: int = 64,
                 num_layers: int = 8,
                 guide_feat: int = 16,
                 guide_layers: int = 4,
                 align: bool = True,
                 loc_feat: int = 16,
                 loc_layers: int = 4,
                 tps_grid: int = 16,
                 cpab_cells: int = 4,
                 cpab_steps: int = 8,
                 warp_window: int = 0,
                 cvm: Optional[str] = 'none',
                 max_disp: int = 24,
                 min_disp: int = 0) -> None:
        if isinstance(upscale, bool) or not isinstance(upscale, int) or upscale < 2:
            raise ValueError(f'upscale must be an integer >= 2, got {upscale!r}.')
        if num_layers < 2 or guide_layers < 2:
            raise ValueError(f'CMSR needs at least 2 convolutions per branch, got num_layers={num_layers}, '
                             f'guide_layers={guide_layers}.')
        super().__init__(upscale, nir_scale, num_in_ch, num_nir_ch, cvm, max_disp, min_disp)
        self.body = plain_convs(num_in_ch, num_feat, num_in_ch, num_layers)
        self.guide_net = plain_convs(num_nir_ch, guide_feat, num_in_ch, guide_layers, last_kernel=1)
        self.aligner = GuideAligner(num_in_ch + num_nir_ch, loc_feat, loc_layers, tps_grid, cpab_cells,
                                    cpab_steps, window=warp_window) if align else None

    def guide(self, lq_nir: Tensor, size: Tuple[int, int]) -> Tensor:
        """The guide at the output ``size``: the NIR itself at ``nir_scale = upscale``, else bicubically upscaled."""
        if self.nir_scale == self.upscale:
            return lq_nir
        return F.interpolate(lq_nir, size=size, mode='bicubic', align_corners=False)

    def forward(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None,
                disp_r: Optional[Tensor] = None) -> CSPSROutput:
        """Super-resolve the left VIS ``lq`` (n, 3, h, w) guided by the right NIR ``lq_nir`` at ``nir_scale`` x.

        Returns:
            CSPSROutput: ``sr`` (n, 3, s*h, s*w); ``nir_sr`` None; ``disp_l``/``disp_r`` those of the CVM in
            front (zeros / None with ``cvm='none'``).
        """
        self.check_inputs(lq, lq_nir)
        lq_nir, disp_l, disp_r = self.align(lq, lq_nir, disp, disp_r)
        size = (self.upscale * lq.size(2), self.upscale * lq.size(3))
        up = F.interpolate(lq, size=size, mode='bicubic', align_corners=False)
        guide = self.guide(lq_nir, size)
        if self.aligner is not None:
            guide = self.aligner(up, guide)
        return self.output(up + self.body(up) + self.guide_net(guide), lq, disp_l, disp_r)
