"""MASA-SR, a reference-based SR network, as a NIR-guided comparison network of cspsr (registered as ``MASASR``).

Reference: L. Lu, W. Li, X. Tao, J. Lu and J. Jia, "MASA-SR: Matching Acceleration and Spatial Adaptation for
Reference-Based Image Super-Resolution", CVPR 2021, arXiv:2106.02299. Written from the paper;
layer sizes, block counts, initial values and details the paper leaves out checked against the authors'
release (dvlab-research/MASA-SR, ``models/archs/MASA_arch.py``, ``train.py``, ``dataloader/dataset.py``).

The network (x4): one encoder (3x3 conv + 4 residual blocks at each of three levels, the last two strided)
for the LR image, the Ref and Ref↓ (the Ref downscaled by the SR scale to the LR size); the Match & Extraction
Module (MEM) matches the LR features with the Ref↓ features, first one match per 8 x 8 LR block on the whole
Ref↓ (patches around the block centre at dilations 1, 2, 3), then every LR pixel densely within a window of
Ref↓ 1.5 blocks wide around its block's match: the matching acceleration, MASA's dense search costing a
window instead of the whole image per pixel; the matches pick Ref features at 1x, 2x and 4x the LR size
(cells of 3x3 patches, overlaps averaged), weighted by the match's cosine similarity. A decoder brings the
LR features back to the LR size (U-Net, 2 residual blocks per level), then at 1x fuses them with the Spatial
Adaptation Module's (SAM) remapping of the 1x Ref features (the Ref features given the LR features' mean and
standard deviation) by a conv and 12 residual blocks, and at 2x and 4x upsamples, remaps the Ref features by
SAM and fuses by the Dual Residual Aggregation Module (DRAM), 8 and 4 residual blocks; a 3x3 conv gives the
residual to the bicubic upsampled LR image.

As a comparison network of the CSPSR paper ("We take the bicubic upscaled NIR image instead of the HR VIS
image as the reference") the Ref is the NIR brought to the output size: the LR NIR bicubic-upscaled by
``upscale`` (``nir_scale`` 1), upscaled by ``upscale // nir_scale``, or with ``nir_scale = upscale`` the
given (HR) NIR itself. Which NIR: the paper aligns the NIR to the VIS view "through the cross-spectral
stereo matching model before SR", so the option files set ``cvm: learned`` (CSPSR's learned CVM in front,
:class:`~cspsr_arch.archs.guided.GuidedSR`; ``cvm: given`` takes the data set's disparity); the network's
default ``cvm='none'`` gives it the right-view NIR as it is, leaving the correspondences to MASA's own matching
(the point of reference-based SR; an ablation). MASA's global coarse search relates each block to the whole
NIR image, so ``row_context`` is True (tiled inference only approximates it). Ref↓ is that Ref downscaled by ``upscale`` (antialiased bicubic, as the release's PIL
resizing and :func:`~cspsr_arch.archs.hr_nir.nir_on_lr_grid`): the paper matches the LR image with Ref↓ at
the LR size (its acceleration over TTSR/SRNTT, which match LR↑ with Ref↓↑ at the output size), so the
"LR-ified" reference is Ref↓ here, not the re-upscaled Ref↓↑ (which would need the LR upscaled too).

Where the paper is silent or the choice is ours (each also stated where it is made):

* The 1-channel NIR enters the shared encoder repeated to 3 channels (``nir_input='repeat'``, the paper's
  weight sharing and parameter count kept): the matching compares encoder features of the VIS LR with those
  of the NIR Ref↓ by cosine similarity, and only a shared encoder makes them comparable before training
  (a grey VIS and the NIR of the same scene give the same features); the matching indices carry no
  gradient, so an encoder that starts incomparable learns to match only through the similarity weights
  (untrained, on synthetic textures with the NIR a shifted grey or colour mix of the VIS, 10-45 % of the
  pixels matched within a pixel of the shift with the repeat, under 1 %, chance, with a separate conv).
  ``'separate'`` (a 1-channel first conv for the NIR, +10 C parameters) is the alternative.
* x2: one DRAM stage (2x, the 8-block body), as x4 without the 4x stage; the encoder of the Ref computes
  the levels at 2x and 1x. Only 2 and 4 are supported (each DRAM stage doubles the size).
* Odd sizes: the LR image is replicate-padded at the bottom and right to a multiple of the block size (8,
  a multiple of the 4 of the encoder's two strided levels) and the output cropped back; the Ref is not
  padded (the windows are kept inside Ref↓; an LR image must be at least 3x3).
* The release folds the transferred patches per block and upsamples the similarities per block; here over
  the whole image (no block seams). One SAM is shared by the three scales, as in the release (the 4.03 M
  parameters reported for MASA count one).
* Initial values: BasicSR's residual blocks (Kaiming x 0.1, as the release's x 0.1), PyTorch's default for
  the other convolutions, SAM's gamma/beta convolutions zero (release).
* Losses: the paper trains with L1 reconstruction, then perceptual and adversarial losses; the comparison
  trains every network with MSE only (the training options, not this module).
"""
import math
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import ResidualBlockNoBN, make_layer
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.cspsr_arch import CSPSROutput
from cspsr_arch.archs.guided import GuidedSR
from cspsr_arch.archs.hr_nir import nir_on_lr_grid
from cspsr_arch.archs.masasr_blocks import CoarseToFineMatch, DualResidualAggregation, SpatialAdaptation, transfer

NIR_INPUTS = ('repeat', 'separate')
PUBLISHED_PARAMS_X4 = 4.03e6  # reported for MASA at x4; the release's code at its defaults has 4,028,291


def _blocks(num_feat: int, count: int) -> nn.Sequential:
    return make_layer(ResidualBlockNoBN, count, num_feat=num_feat)


class MASAEncoder(nn.Module):
    """Three levels, each a 3x3 conv (stride 1, 2, 2) + ReLU + residual blocks; shared by LR, Ref and Ref↓.

    Args:
        in_ch (int): Input channels.
        num_feat (int): Channels C.
        num_blocks (Sequence[int]): Residual blocks per level; the release's (4, 4, 4).
    """

    def __init__(self, in_ch: int, num_feat: int, num_blocks: Sequence[int] = (4, 4, 4)) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(in_ch if i == 0 else num_feat, num_feat, 3, 1 if i == 0 else 2, 1)
                                    for i in range(len(num_blocks))])
        self.bodies = nn.ModuleList([_blocks(num_feat, count) for count in num_blocks])
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, levels: int, first: Optional[nn.Module] = None) -> List[Tensor]:
        """The first ``levels`` levels (1x, 1/2, 1/4 of ``x``'s size); ``first`` replaces the first conv."""
        feats = []
        for i in range(levels):
            conv = first if i == 0 and first is not None else self.convs[i]
            x = self.bodies[i](self.act(conv(x)))
            feats.append(x)
        return feats


class MASADecoder(nn.Module):
    """LR U-Net back to the LR size, then SAM + fusion at 1x and SAM + DRAM per doubling, and the output conv.

    Args:
        num_feat (int): Channels C.
        num_out_ch (int): Output channels.
        stages (int): DRAM stages, log2 of the scale.
        num_blocks_lr (Sequence[int]): Residual blocks of the U-Net at 1/4, 1/2 and 1x; the release's (2, 2, 2).
        num_blocks_x1 (int): Residual blocks after the 1x fusion; the release's 12.
        num_blocks_up (Sequence[int]): Residual blocks after each DRAM (2x, 4x); the release's (8, 4).
    """

    def __init__(self, num_feat: int, num_out_ch: int, stages: int, num_blocks_lr: Sequence[int] = (2, 2, 2),
                 num_blocks_x1: int = 12, num_blocks_up: Sequence[int] = (8, 4)) -> None:
        super().__init__()
        self.lr_convs = nn.ModuleList([nn.Conv2d(num_feat if i == 0 else 2 * num_feat, num_feat, 3, 1, 1)
                                       for i in range(len(num_blocks_lr))])
        self.lr_bodies = nn.ModuleList([_blocks(num_feat, count) for count in num_blocks_lr])
        self.sam = SpatialAdaptation(num_feat)  # one SAM for every scale, as in the release
        self.merge = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
        self.body_x1 = _blocks(num_feat, num_blocks_x1)
        self.drams = nn.ModuleList([DualResidualAggregation(num_feat) for _ in range(stages)])
        self.bodies_up = nn.ModuleList([_blocks(num_feat, num_blocks_up[i]) for i in range(stages)])
        self.conv_out = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.act = nn.ReLU(inplace=True)

    @staticmethod
    def _up(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)

    def forward(self, lr_feats: List[Tensor], warped: List[Tensor]) -> Tensor:
        """``lr_feats`` at 1x, 1/2, 1/4 of the LR size; ``warped`` Ref features at 1x, 2x, ... -> residual."""
        x = None
        for i, (conv, body) in enumerate(zip(self.lr_convs, self.lr_bodies)):
            skip = lr_feats[len(lr_feats) - 1 - i]
            x = body(self.act(conv(skip if x is None else torch.cat([self._up(x), skip], dim=1))))
        x = self.body_x1(self.act(self.merge(torch.cat([self.sam(x, warped[0]), x], dim=1))))
        for i, (dram, body) in enumerate(zip(self.drams, self.bodies_up)):
            x = body(dram(x, self.sam(self._up(x), warped[i + 1])))
        return self.conv_out(x)


@ARCH_REGISTRY.register()
class MASASR(GuidedSR):
    """MASA-SR guided by the NIR as its reference image (see the module docstring).

    ``MASASR()`` is the paper's network at x4 (C = 64, the release's block counts): 4,028,291 parameters, those
    of the release's code at its defaults, the 4.03 M reported for MASA.

    Args:
        upscale (int): Scale factor, 2 or 4 (each DRAM stage doubles the size). Default: 4.
        nir_scale (int): The NIR enters at ``nir_scale`` x the LR size; it must divide ``upscale``. The Ref is
            the NIR bicubic-upscaled by ``upscale // nir_scale`` (the NIR itself when equal). Default: 1.
        num_in_ch (int): VIS channels. Default: 3.
        num_nir_ch (int): NIR channels. Default: 1.
        num_feat (int): Channels C everywhere. Default: 64.
        num_blocks_enc (Sequence[int]): Residual blocks per encoder level (1x, 1/2, 1/4). Default: (4, 4, 4).
        num_blocks_lr (Sequence[int]): Residual blocks of the decoder's LR U-Net (1/4, 1/2, 1x). Default: (2, 2, 2).
        num_blocks_x1 (int): Residual blocks after the 1x fusion. Default: 12.
        num_blocks_up (Sequence[int]): Residual blocks after the DRAM at 2x and at 4x (x2 uses the first).
            Default: (8, 4).
        block_size (int): LR block size of the coarse match (the release's 8); the LR image is padded to a
            multiple of it (and of 4). Default: 8.
        window_ratio (float): Fine-search window side over the block side (the release's 1.5: 13 candidate
            centres per side for blocks of 8). Default: 1.5.
        dilations (Sequence[int]): Dilations of the block-centre patches of the coarse match (the release's).
            Default: (1, 2, 3).
        nir_input (str): How the NIR enters the encoder built for the VIS: ``'repeat'`` (repeated to
            ``num_in_ch`` channels, every weight shared, so VIS and NIR features are comparable for the
            matching from the start) or ``'separate'`` (its own first conv). Default: ``'repeat'``.
        cvm (str | None): Cross-view matching in front: ``'none'`` (the right-view NIR as given), ``'learned'``
            or ``'given'`` (:class:`~cspsr_arch.archs.guided.GuidedSR`). Default: 'none'.
        max_disp (int): Largest disparity (LR pixels) of the learned CVM. Default: 24.
        min_disp (int): Smallest disparity of the learned CVM. Default: 0.
    """

    row_context = True

    def __init__(self,
                 upscale: int = 4,
                 nir_scale: int = 1,
                 num_in_ch: int = 3,
                 num_nir_ch: int = 1,
                 num_feat: int = 64,
                 num_blocks_enc: Sequence[int] = (4, 4, 4),
                 num_blocks_lr: Sequence[int] = (2, 2, 2),
                 num_blocks_x1: int = 12,
                 num_blocks_up: Sequence[int] = (8, 4),
                 block_size: int = 8,
                 window_ratio: float = 1.5,
                 dilations: Sequence[int] = (1, 2, 3),
                 nir_input: str = 'repeat',
                 cvm: Optional[str] = 'none',
                 max_disp: int = 24,
                 min_disp: int = 0) -> None:
        if not isinstance(upscale, int) or isinstance(upscale, bool) or upscale not in (2, 4):
            raise ValueError(f'MASASR: upscale must be 2 or 4 (each DRAM stage doubles the size), got {upscale!r}.')
        super().__init__(upscale, nir_scale, num_in_ch, num_nir_ch, cvm, max_disp, min_disp)
        if nir_input not in NIR_INPUTS:
            raise ValueError(f'MASASR: nir_input must be one of {NIR_INPUTS}, got {nir_input!r}.')
        if nir_input == 'repeat' and num_in_ch % num_nir_ch:
            raise ValueError(f"MASASR(nir_input='repeat') repeats the NIR to the VIS channels: num_nir_ch "
                             f'({num_nir_ch}) must divide num_in_ch ({num_in_ch}).')
        if len(num_blocks_enc) != 3 or len(num_blocks_lr) != 3:
            raise ValueError('MASASR: num_blocks_enc and num_blocks_lr give three levels each, got '
                             f'{list(num_blocks_enc)} and {list(num_blocks_lr)}.')
        self.stages = int(math.log2(upscale))
        if len(num_blocks_up) < self.stages:
            raise ValueError(f'MASASR: num_blocks_up needs {self.stages} entries at x{upscale}, got '
                             f'{list(num_blocks_up)}.')
        if block_size < 1 or window_ratio <= 0 or not dilations or min(dilations) < 1:
            raise ValueError(f'MASASR: block_size and the dilations must be positive integers and window_ratio '
                             f'positive, got {block_size}, {list(dilations)}, {window_ratio}.')
        self.num_feat, self.nir_input = num_feat, nir_input
        self.multiple = block_size * 4 // math.gcd(block_size, 4)  # the blocks and the encoder's two strides
        self.encoder = MASAEncoder(num_in_ch, num_feat, num_blocks_enc)
        if nir_input == 'separate':
            self.nir_conv = nn.Conv2d(num_nir_ch, num_feat, 3, 1, 1)
        self.match = CoarseToFineMatch(block_size, window_ratio, dilations)
        self.decoder = MASADecoder(num_feat, num_in_ch, self.stages, num_blocks_lr, num_blocks_x1, num_blocks_up)

    def reference(self, lq_nir: Tensor) -> Tensor:
        """The Ref: the NIR at the output size (bicubic by ``upscale // nir_scale``, or the NIR itself)."""
        factor = self.upscale // self.nir_scale
        if factor == 1:
            return lq_nir
        return F.interpolate(lq_nir, scale_factor=factor, mode='bicubic', align_corners=False)

    def encode_nir(self, nir: Tensor, levels: int) -> List[Tensor]:
        """The encoder's first ``levels`` levels of a NIR image (repeated to the VIS channels or its own conv)."""
        if self.nir_input == 'separate':
            return self.encoder(nir, levels, first=self.nir_conv)
        return self.encoder(nir.repeat(1, self.num_in_ch // self.num_nir_ch, 1, 1), levels)

    def forward(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None,
                disp_r: Optional[Tensor] = None) -> CSPSROutput:
        """Super-resolve the left VIS with the right NIR, aligned by the CVM in front (``cvm``), as reference.

        Args:
            lq (Tensor): LR VIS, left view, (n, num_in_ch, h, w) in [0, 1], h and w at least 3.
            lq_nir (Tensor): NIR, right view, (n, num_nir_ch, nir_scale*h, nir_scale*w).
            disp (Tensor | None): Left disparity (LR pixels), read with ``cvm='given'`` only.
            disp_r (Tensor | None): Right disparity, passed through with ``cvm='given'``.

        Returns:
            CSPSROutput: ``sr`` (n, num_in_ch, s*h, s*w); ``nir_sr`` None; ``disp_l``/``disp_r`` those that
            aligned the NIR (zeros / None with ``cvm='none'``).
        """
        self.check_inputs(lq, lq_nir)
        height, width = lq.shape[-2:]
        if min(height, width) < 3:
            raise ValueError(f'MASASR needs an LR image of at least 3x3 (its matches are centres of 3x3 patches '
                             f'of the downscaled reference), got {tuple(lq.shape)}.')
        lq_nir, disp_l, disp_r = self.align(lq, lq_nir, disp, disp_r)
        ref = self.reference(lq_nir)  # (n, c, s*h, s*w)
        ref_down = nir_on_lr_grid(ref, (height, width))  # Ref↓, at the LR size
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        lr_feats = self.encoder(F.pad(lq, (0, pad_w, 0, pad_h), mode='replicate') if pad_h or pad_w else lq, 3)
        ref_feats = self.encode_nir(ref, self.stages + 1)  # at s x, s/2 x, ..., 1 x the LR size
        index, score = self.match(lr_feats[0], self.encode_nir(ref_down, 1)[0])
        warped = [transfer(ref_feats[self.stages - i], index, score, 2**i) for i in range(self.stages + 1)]
        residual = self.decoder(lr_feats, warped)[..., :self.upscale * height, :self.upscale * width]
        sr = residual + F.interpolate(lq, scale_factor=self.upscale, mode='bicubic', align_corners=False)
        return self.output(sr, lq, disp_l, disp_r)
