"""ENLCN, the efficient non-local contrastive network: VIS only (``ENLCN``) and with the NIR as input (``ENLCNNIR``).

B. Xia, Y. Hang, Y. Tian, W. Yang, Q. Liao, J. Zhou, "Efficient Non-Local Contrastive Attention for Image
Super-Resolution", AAAI 2022 (arXiv:2201.03794); official code: github.com/Zj-BinXia/ENLCA (EDSR-PyTorch based).

The network is EDSR with a few ENLCA modules (:mod:`cspsr_arch.archs.enlca`) in its body: one before the first
residual block and one after every 8 blocks, then EDSR's convolution after the body, the global residual, the
pixel-shuffle upsampler and the last convolution; EDSR's conventions (inputs in [0, 1] scaled to ``img_range``
255 after subtracting the DIV2K ``rgb_mean``, PyTorch's default initialisation, ``basicsr.archs.arch_util``'s
``ResidualBlockNoBN`` and ``Upsample``): BasicSR's EDSR with the attention modules added.

Sizes. The ENLCN paper's own network is EDSR's large one, 32 blocks of 256 features with ``res_scale`` 0.1
(5 ENLCA modules, 41.2 M parameters at x2, 43.6 M at x4). The CSPSR paper compares an ENLCN of 1.536 M
parameters: EDSR's baseline, 16 blocks of 64 features, ``res_scale`` 1, with 3 ENLCA modules, is exactly
1,536,291 at x4 (EDSR baseline 1,517,571 + 3 x 6,240), so that is the default here
(``tests/test_archs/test_enlcn.py``).

Choices where the paper is silent (the official code's, where it has them):

* The attention's placement (before block 1, then after every ``attn_every`` = 8 blocks; with a number of
  blocks not a multiple of 8, none after the last partial group) and its sizes: see :mod:`cspsr_arch.archs.enlca`.
* Training loss. The official trainer adds ``1e-3 x`` the contrastive loss of the attention modules (after the
  first tenth of training) to the L1 loss. BasicSR's ``SRModel`` (and ``CSPSRModel``) train a network from its
  output alone, so the options here train ENLCN with the protocol's pixel loss only, like every network of
  the comparison. ``contrastive=True`` makes each attention module compute its loss in training mode, and
  :meth:`ENLCN.contrastive_loss` returns their mean, for a model that adds it.
* The random features of the attention are drawn at construction and kept in the checkpoint (evaluation is
  deterministic): :mod:`cspsr_arch.archs.enlca`.

ENLCN w/ NIR (the CSPSR paper's Table 3: the NIR concatenated at the input of ENLCN) is :class:`ENLCNNIR`:
the same network built with one more input channel, fed the LR VIS image and the right view's LR NIR stacked,
the NIR as given (not aligned: the same input as the project's concatenation baseline ``ConcatNIR``). The NIR
of a pixel enters with that pixel; the misaligned content can only be reached by the convolutions' receptive
field and the global attention over features. An HR NIR (``nir_scale`` f > 1) is pixel-unshuffled onto the LR
grid (f^2 channels per NIR channel), so every NIR sample reaches the network. The NIR channel is centred on
``nir_mean`` (0.5: the NIR has no DIV2K mean) and scaled like the VIS.

Two registered names rather than one class with a ``nir`` flag: the package decides from the arch type alone
whether a network reads a NIR (:func:`cspsr_arch.infer.vis_only.reads_nir`: the ``GuidedSR`` subclasses) and so
which model trains it (``SRModel`` the VIS-only ``ENLCN``, ``CSPSRModel`` the ``ENLCNNIR``) and what
``basicsr infer`` feeds it.
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import ResidualBlockNoBN, Upsample
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.cspsr_arch import CSPSROutput
from cspsr_arch.archs.enlca import ENLCA
from cspsr_arch.archs.guided import GuidedSR

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


@ARCH_REGISTRY.register()
class ENLCN(nn.Module):
    """ENLCN: EDSR with efficient non-local contrastive attention (see the module docstring), VIS only.

    ``forward(x)`` maps (n, num_in_ch, h, w) in [0, 1] to (n, num_out_ch, upscale*h, upscale*w), any h, w.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels; the output adds back the first ``num_out_ch`` entries of ``rgb_mean``.
            Default: 3.
        num_feat (int): Features of the body (64: the CSPSR paper's size; the ENLCN paper's is 256). Default: 64.
        num_block (int): Residual blocks (16: the CSPSR paper's size; the ENLCN paper's is 32). Default: 16.
        upscale (int): Scale factor, 2^n or 3 (EDSR's upsampler). Default: 4.
        res_scale (float): Scale of the residual branches and of the attention output (EDSR's: 1 for the 64-feature
            network, 0.1 for the 256-feature one that is unstable otherwise). Default: 1.
        attn_every (int): An attention module before the first block and after every ``attn_every`` blocks
            (8 in the paper: global context a few times, the local blocks doing the rest). Default: 8.
        reduction (int): Query/key embeddings of ``num_feat // reduction`` channels. Default: 4.
        num_features (int): Random features of the kernel estimate. Default: 128.
        amplification (float): Sparse Aggregation's factor ``k``. Default: sqrt(6).
        img_range (float): Image range (EDSR's convention: the network works on 0..255 values). Default: 255.
        rgb_mean (Sequence[float]): Mean of each input channel in [0, 1] (DIV2K's, EDSR's). Default: DIV2K's.
        contrastive (bool): Compute the attention's contrastive loss in training mode (see
            :meth:`contrastive_loss`). Default: False.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4, res_scale: float = 1.0, attn_every: int = 8, reduction: int = 4,
                 num_features: int = 128, amplification: float = math.sqrt(6), img_range: float = 255.,
                 rgb_mean: Sequence[float] = DIV2K_MEAN, contrastive: bool = False) -> None:
        super().__init__()
        if len(rgb_mean) != num_in_ch or num_out_ch > num_in_ch or attn_every < 1:
            raise ValueError(f'ENLCN needs one rgb_mean entry per input channel ({num_in_ch}, got {len(rgb_mean)}), '
                             f'num_out_ch ({num_out_ch}) <= num_in_ch and attn_every >= 1 (got {attn_every}).')
        self.upscale, self.img_range, self.num_out_ch = upscale, img_range, num_out_ch
        self.register_buffer('mean', torch.tensor(list(rgb_mean), dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

        def attention() -> ENLCA:
            return ENLCA(num_feat, reduction, num_features, amplification, res_scale, contrastive)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        body = [attention()]
        for i in range(num_block):
            body.append(ResidualBlockNoBN(num_feat=num_feat, res_scale=res_scale, pytorch_init=True))
            if (i + 1) % attn_every == 0:
                body.append(attention())
        self.body = nn.Sequential(*body)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = self.conv_first((x - mean) * self.img_range)
        res = self.conv_after_body(self.body(x)) + x
        return self.conv_last(self.upsample(res)) / self.img_range + mean[:, :self.num_out_ch]

    def contrastive_loss(self) -> Optional[Tensor]:
        """Mean contrastive loss of the attention modules in the last training forward (None if not computed)."""
        losses = [m.last_contrastive for m in self.body if isinstance(m, ENLCA) and m.last_contrastive is not None]
        return torch.stack(losses).mean() if losses else None


@ARCH_REGISTRY.register()
class ENLCNNIR(GuidedSR):
    """ENLCN w/ NIR: :class:`ENLCN` on the LR VIS image with the NIR as extra input channels (see the module docstring).

    ``forward(lq, lq_nir, disp=None, disp_r=None) -> CSPSROutput`` (:mod:`cspsr_arch.archs.guided`); the
    disparities are not used (the NIR is taken as given). ``row_context`` is True: the attention relates every
    pixel to the whole image, so tiled inference only approximates it.

    Args:
        upscale (int): Scale factor, 2^n or 3. Default: 4.
        nir_scale (int): The NIR at ``nir_scale`` x the LR size (1: the LR NIR; > 1 pixel-unshuffled onto the LR
            grid). Default: 1.
        num_in_ch (int): VIS channels (also the output channels). Default: 3.
        num_nir_ch (int): NIR channels. Default: 1.
        rgb_mean (Sequence[float]): Mean of each VIS channel. Default: DIV2K's.
        nir_mean (float): Mean subtracted from the NIR (mid-grey: no data set mean is given for it). Default: 0.5.
        num_feat, num_block, res_scale, attn_every, reduction, num_features, amplification, img_range,
            contrastive: As in :class:`ENLCN` (named here, not passed as ``**kwargs``, so that the option check
            names a misspelt key).
    """

    row_context = True

    def __init__(self, upscale: int = 4, nir_scale: int = 1, num_in_ch: int = 3, num_nir_ch: int = 1,
                 rgb_mean: Sequence[float] = DIV2K_MEAN, nir_mean: float = 0.5, num_feat: int = 64,
                 num_block: int = 16, res_scale: float = 1.0, attn_every: int = 8, reduction: int = 4,
                 num_features: int = 128, amplification: float = math.sqrt(6), img_range: float = 255.,
                 contrastive: bool = False) -> None:
        super().__init__(upscale, nir_scale, num_in_ch, num_nir_ch)
        guide_ch = num_nir_ch * nir_scale**2
        self.net = ENLCN(num_in_ch=num_in_ch + guide_ch, num_out_ch=num_in_ch, num_feat=num_feat, num_block=num_block,
                         upscale=upscale, res_scale=res_scale, attn_every=attn_every, reduction=reduction,
                         num_features=num_features, amplification=amplification, img_range=img_range,
                         rgb_mean=tuple(rgb_mean) + (nir_mean, ) * guide_ch, contrastive=contrastive)

    def forward(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None,
                disp_r: Optional[Tensor] = None) -> CSPSROutput:
        self.check_inputs(lq, lq_nir)
        guide = lq_nir if self.nir_scale == 1 else F.pixel_unshuffle(lq_nir, self.nir_scale)
        return self.output(self.net(torch.cat([lq, guide], dim=1)), lq)
