"""NAFSSR, a stereo SR network, as a NIR-guided comparison network of cspsr (registered as ``NAFSSR``).

Reference: X. Chu, L. Chen and W. Yu, "NAFSSR: Stereo Image Super-Resolution Using NAFNet", CVPR Workshops
(NTIRE) 2022, pp. 1239-1248, arXiv:2204.08714; its building block is NAFNet's (L. Chen, X. Chu, X. Zhang and
J. Sun, "Simple Baselines for Image Restoration", ECCV 2022, arXiv:2204.04676). Written from the papers;
sizes, initial values and the training options checked against the authors' release (megvii-research/NAFNet,
``docs/StereoSR.md`` and ``options/{train,test}/NAFSSR``).

The network: a 3x3 convolution per view (intra-view features at the LR size, width C), ``num_blocks``
NAFSSR blocks, each a NAFBlock applied to both views with shared weights followed by a stereo cross-attention
module (SCAM) between them, and a 3x3 convolution + pixel shuffle; a global skip adds the upsampled LR input.

As a comparison network of the CSPSR paper the stereo pair is the VIS/NIR pair: the left view is the LR VIS
(3 channels), the right view the LR NIR of the other camera (1 channel, at the LR size: ``nir_scale`` 1
only). SCAM attends along the rows of the other view (the epipolar lines of a rectified pair), so it finds
the NIR's match itself, with no disparity: ``row_context`` is True and tiled inference only approximates it.
The output is the super-resolved left (VIS) view; NAFSSR's right-view output (here an SR NIR through the
VIS head) is not computed: the head is applied to the left view only and the last SCAM updates only the left
features; its right-view half (a value convolution and a scale, C**2 + 2C parameters) would feed nothing, so
it is not built (DistributedDataParallel stops on parameters without a gradient).

Where the paper is silent or the choice is ours (each stated where it is made):

* The 1-channel NIR cannot enter the 3-channel intro convolution: by default it has its own 3x3 intro
  convolution (``nir_intro='separate'``, +10 C parameters), all else shared (see :class:`NAFSSR`).
* Stochastic depth (the paper's training strategy; the release uses 0 / 0.1 / 0.2 / 0.3 for T / S / B / L)
  is the ``drop_path_rate`` option, off by default (see :class:`DropPathPair`).
* The test-time strategies of the paper (TLSC, i.e. local instead of global average pooling in the channel
  attention for images larger than the training patches, and flip/swap self-ensembles) are not implemented:
  they are inference tricks outside the network's weights, and the other networks compared here have none.
* NAFBlock's dropout is left out (rate 0 in every released configuration).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.branch import ShuffleHead
from cspsr_arch.archs.cspsr_arch import CSPSROutput
from cspsr_arch.archs.guided import GuidedSR

# (width C, number of blocks) of the paper's four sizes, as the release's options give them
SIZES = {'T': (48, 16), 'S': (64, 32), 'B': (96, 64), 'L': (128, 128)}
# parameters at x4 that the release reports (docs/StereoSR.md), in millions
PUBLISHED_PARAMS_X4 = {'T': 0.46, 'S': 1.56, 'B': 6.80, 'L': 23.83}
# the stochastic-depth rates of the release's x4 training options, for reference (not a default here)
RELEASED_DROP_PATH = {'T': 0.0, 'S': 0.1, 'B': 0.2, 'L': 0.3}
NIR_INTROS = ('separate', 'repeat')
SKIPS = ('bilinear', 'bicubic', 'none')


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of every pixel of an (n, C, h, w) map, with a learned affine map.

    Args:
        channels (int): C.
        eps (float): Added to the variance; NAFNet's 1e-6. Default: 1e-6.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        centred = x - mean
        var = centred.pow(2).mean(1, keepdim=True)
        return centred * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


class SimpleGate(nn.Module):
    """NAFNet's activation: split the channels in two halves and multiply them (2C -> C)."""

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """NAFNet's block: LN, 1x1 (C -> 2C), depth-wise 3x3, SimpleGate, simplified channel attention, 1x1, scaled
    residual; then LN, 1x1 (C -> 2C), SimpleGate, 1x1, scaled residual.

    The simplified channel attention multiplies the features by a 1x1 convolution of their global average
    (no non-linearity). The residual scales ``beta`` and ``gamma`` (per channel) start at zero, as in NAFNet,
    so every block starts as the identity. Expansion 2 in both halves, as in every NAFSSR size.

    Args:
        channels (int): C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c, wide = channels, 2 * channels
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, wide, 1)
        self.conv2 = nn.Conv2d(wide, wide, 3, 1, 1, groups=wide)
        self.gate = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        self.conv3 = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, wide, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        t = self.gate(self.conv2(self.conv1(self.norm1(x))))
        y = x + self.beta * self.conv3(t * self.sca(t))
        return y + self.gamma * self.conv5(self.gate(self.conv4(self.norm2(y))))


class SCAM(nn.Module):
    """Stereo cross-attention module: every pixel attends to the whole same row of the other view.

    With ``X̄ = LN(X)``: ``F_R->L = softmax(W1_L X̄_L (W1_R X̄_R)^T / sqrt(C)) W2_R X_R`` row by row (the
    softmax over the right row), ``F_L->R`` the same with the views swapped (the transposed logits), and
    ``out_L = X_L + gamma_L * F_R->L``, ``out_R = X_R + gamma_R * F_L->R``. W1, W2 are 1x1 convolutions per
    view; queries and keys come from the normalised features, values from the raw ones; ``gamma`` (per
    channel) starts at zero, as in the paper's release, so the module starts as the identity.

    Args:
        channels (int): C.
        update_right (bool): Compute ``out_R``. False for the last block of :class:`NAFSSR`, whose right-view
            output would feed nothing: it then has no ``value_l``/``gamma_r`` (parameters that get no gradient
            would stop DistributedDataParallel) and returns ``x_r`` as it is. Default: True.
    """

    def __init__(self, channels: int, update_right: bool = True) -> None:
        super().__init__()
        self.scale = channels ** -0.5
        self.update_right = update_right
        self.norm_l, self.norm_r = LayerNorm2d(channels), LayerNorm2d(channels)
        self.query_l = nn.Conv2d(channels, channels, 1)  # W1_L
        self.query_r = nn.Conv2d(channels, channels, 1)  # W1_R
        self.value_r = nn.Conv2d(channels, channels, 1)  # W2_R
        self.gamma_l = nn.Parameter(torch.zeros(1, channels, 1, 1))
        if update_right:
            self.value_l = nn.Conv2d(channels, channels, 1)  # W2_L
            self.gamma_r = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def logits(self, x_l: Tensor, x_r: Tensor) -> Tensor:
        """Scaled dot products of every left pixel with every right pixel of its row: (n, h, w_l, w_r)."""
        q_l = self.query_l(self.norm_l(x_l)).permute(0, 2, 3, 1)  # n, h, w, C
        q_r = self.query_r(self.norm_r(x_r)).permute(0, 2, 1, 3)  # n, h, C, w
        return torch.matmul(q_l, q_r) * self.scale

    def attention(self, x_l: Tensor, x_r: Tensor) -> Tensor:
        """The right-to-left attention map (n, h, w_l, w_r): each row a distribution over the right row."""
        return torch.softmax(self.logits(x_l, x_r), dim=-1)

    def forward(self, x_l: Tensor, x_r: Tensor) -> Tuple[Tensor, Tensor]:
        """``(out_L, out_R)`` (``out_R`` is ``x_r`` itself without ``update_right``)."""
        logits = self.logits(x_l, x_r)
        v_r = self.value_r(x_r).permute(0, 2, 3, 1)  # n, h, w, C
        r2l = torch.matmul(torch.softmax(logits, dim=-1), v_r).permute(0, 3, 1, 2)
        out_l = x_l + self.gamma_l * r2l
        if not self.update_right:
            return out_l, x_r
        v_l = self.value_l(x_l).permute(0, 2, 3, 1)
        l2r = torch.matmul(torch.softmax(logits.transpose(-1, -2), dim=-1), v_l).permute(0, 3, 1, 2)
        return out_l, x_r + self.gamma_r * l2r


class DropPathPair(nn.Module):
    """One NAFSSR block (a NAFBlock on both views, shared weights, then SCAM) with optional stochastic depth.

    Stochastic depth (the paper's training strategy, after Huang et al., ECCV 2016; one rate for all blocks, as
    in the release's options): in training, with probability ``drop_rate`` a sample skips the whole block (both
    views, the SCAM too) and otherwise takes ``x + (block(x) - x) / (1 - drop_rate)``, so the expectation is
    the block's output; at evaluation the block is applied as it is. Our choice: the draw is per sample (the
    release draws once per mini-batch and skips the computation), so every parameter is used at every step
    (DistributedDataParallel needs no ``find_unused_parameters``) and the graph does not depend on a random
    draw (``torch.compile`` keeps one graph); the regularisation is the same in expectation.

    Args:
        channels (int): C.
        drop_rate (float): Probability of dropping the block in training, in [0, 1). Default: 0.
        update_right (bool): The SCAM updates the right view (see :class:`SCAM`). Default: True.
    """

    def __init__(self, channels: int, drop_rate: float = 0., update_right: bool = True) -> None:
        super().__init__()
        self.drop_rate = drop_rate
        self.block = NAFBlock(channels)
        self.scam = SCAM(channels, update_right)

    def forward(self, x_l: Tensor, x_r: Tensor) -> Tuple[Tensor, Tensor]:
        n = x_l.size(0)
        # both views in one batch: the same weights, one call per convolution instead of two
        f_l, f_r = self.block(torch.cat([x_l, x_r], dim=0)).split(n, dim=0)
        f_l, f_r = self.scam(f_l, f_r)
        if not self.training or self.drop_rate == 0:
            return f_l, f_r
        keep = x_l.new_empty(n, 1, 1, 1).bernoulli_(1 - self.drop_rate) / (1 - self.drop_rate)
        return x_l + keep * (f_l - x_l), x_r + keep * (f_r - x_r)


@ARCH_REGISTRY.register()
class NAFSSR(GuidedSR):
    """NAFSSR on a VIS/NIR pair: the super-resolved VIS (left view) guided by the NIR (right view).

    Sizes: ``size`` picks the paper's T/S/B/L (C, blocks) = (48, 16), (64, 32), (96, 64), (128, 128), published
    with 0.46 / 1.56 / 6.80 / 23.83 M parameters at x4; here 0.459 / 1.556 / 6.788 / 23.817 M (the last SCAM's
    right half, C**2 + 2C, is not built; the NIR intro adds 10 C); ``width``/``num_blocks`` override it.

    The default is NAFSSR-S. The CSPSR paper does not say which size it compared (an assumption): S (1.56 M) is
    the size closest to CSPSR (1.30 M) and to the stereo SR network compared beside it (iPASSR, 1.42 M), so the
    comparison is at similar capacity; B (6.80 M) would be five times CSPSR, T (0.46 M) a third of it.
    ``NAFSSR(width=32, num_blocks=16)`` (0.216 M at x4: NAFSSR-T's depth at C=32) fits the CPU benchmark.

    Args:
        upscale (int): Scale factor (the paper: 2 and 4; any integer >= 1 works). Default: 4.
        nir_scale (int): Must be 1: the right view enters at the LR size, as NAFSSR's second view. Default: 1.
        num_in_ch (int): VIS channels (output channels too). Default: 3.
        num_nir_ch (int): NIR channels. Default: 1.
        size (str): ``'T'``, ``'S'``, ``'B'`` or ``'L'``. Default: ``'S'`` (see above).
        width (int): Channels C; 0 takes the size's. Default: 0.
        num_blocks (int): NAFSSR blocks (each with a SCAM, as in every size of the paper); 0 takes the size's.
            Default: 0.
        drop_path_rate (float): Stochastic depth per block in training (the release trains T/S/B/L with
            0/0.1/0.2/0.3); 0 by default, for the short CPU training runs of this project where the
            regularisation only slows convergence. Default: 0.
        nir_intro (str): How the NIR enters the shared trunk. ``'separate'`` (default): its own 3x3 intro
            convolution (1 -> C, 10 C parameters) and everything after it shared, as the paper shares all
            weights between two views of one modality; the first layer is the only place where VIS and NIR
            differ in channels, and the cross-spectral pair differs in its statistics (the paper's two RGB
            views do not), which a shared intro filter cannot adapt to. ``'repeat'``: the NIR repeated to
            ``num_in_ch`` channels into the VIS intro convolution (all weights shared, the NIR then seen
            through the sum of the three colour filters). Default: ``'separate'``.
        skip (str): Global skip added to the reconstruction: ``'bilinear'`` upsampling of the LR VIS (what the
            paper's network and release use), ``'bicubic'`` (the skip of CSPSR and the other networks here,
            added before the pixel shuffle, :mod:`cspsr_arch.archs.bicubic`) or ``'none'``. Default:
            ``'bilinear'``.
    """

    row_context = True

    def __init__(self,
                 upscale: int = 4,
                 nir_scale: int = 1,
                 num_in_ch: int = 3,
                 num_nir_ch: int = 1,
                 size: str = 'S',
                 width: int = 0,
                 num_blocks: int = 0,
                 drop_path_rate: float = 0.,
                 nir_intro: str = 'separate',
                 skip: str = 'bilinear') -> None:
        if isinstance(upscale, bool) or not isinstance(upscale, int) or upscale < 1:
            raise ValueError(f'NAFSSR: upscale must be a positive integer, got {upscale!r}.')
        super().__init__(upscale, nir_scale, num_in_ch, num_nir_ch)
        if nir_scale != 1:
            raise ValueError(f'NAFSSR takes the NIR at the LR size (nir_scale=1), got nir_scale={nir_scale}: its '
                             'stereo cross-attention relates pixels of two views on the same grid.')
        skip = 'none' if skip is None else skip  # BasicSR's --force_yml turns 'none' into None
        if size not in SIZES:
            raise ValueError(f'NAFSSR: size must be one of {tuple(SIZES)}, got {size!r}.')
        if nir_intro not in NIR_INTROS:
            raise ValueError(f'NAFSSR: nir_intro must be one of {NIR_INTROS}, got {nir_intro!r}.')
        if skip not in SKIPS:
            raise ValueError(f'NAFSSR: skip must be one of {SKIPS}, got {skip!r}.')
        if nir_intro == 'repeat' and num_in_ch % num_nir_ch:
            raise ValueError(f"NAFSSR(nir_intro='repeat') repeats the NIR to the VIS channels: num_nir_ch "
                             f'({num_nir_ch}) must divide num_in_ch ({num_in_ch}).')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'NAFSSR: drop_path_rate must be in [0, 1), got {drop_path_rate}.')
        width, num_blocks = width or SIZES[size][0], num_blocks or SIZES[size][1]
        if width < 1 or num_blocks < 1:
            raise ValueError(f'NAFSSR: width and num_blocks must be positive, got {width} and {num_blocks}.')
        self.width, self.num_blocks, self.nir_intro, self.skip = width, num_blocks, nir_intro, skip
        self.intro = nn.Conv2d(num_in_ch, width, 3, 1, 1)
        if nir_intro == 'separate':
            self.intro_nir = nn.Conv2d(num_nir_ch, width, 3, 1, 1)
        self.body = nn.ModuleList(
            [DropPathPair(width, drop_path_rate, update_right=i < num_blocks - 1) for i in range(num_blocks)])
        self.head = ShuffleHead(width, num_in_ch, upscale)

    def forward(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None,
                disp_r: Optional[Tensor] = None) -> CSPSROutput:
        """Super-resolve the left VIS with the right NIR; ``disp``/``disp_r`` are ignored (SCAM matches itself).

        Args:
            lq (Tensor): LR VIS, left view, (n, num_in_ch, h, w) in [0, 1].
            lq_nir (Tensor): LR NIR, right view, (n, num_nir_ch, h, w) in [0, 1].
            disp (Tensor | None): Unused (the common interface of :mod:`cspsr_arch.archs.guided`).
            disp_r (Tensor | None): Unused.

        Returns:
            CSPSROutput: ``sr`` (n, num_in_ch, s*h, s*w); ``nir_sr`` None, ``disp_l`` zeros, ``disp_r`` None.
        """
        self.check_inputs(lq, lq_nir)
        feat_l = self.intro(lq)
        if self.nir_intro == 'separate':
            feat_r = self.intro_nir(lq_nir)
        else:
            feat_r = self.intro(lq_nir.repeat(1, self.num_in_ch // self.num_nir_ch, 1, 1))
        for block in self.body:
            feat_l, feat_r = block(feat_l, feat_r)
        sr = self.head(feat_l, lq if self.skip == 'bicubic' else None)
        if self.skip == 'bilinear':
            sr = sr + F.interpolate(lq, scale_factor=self.upscale, mode='bilinear', align_corners=False)
        return self.output(sr, lq)
