"""SMSR, a sparse-mask SR network, as a VIS-only comparison network of cspsr (registered as ``SMSR``).

Reference: L. Wang, X. Dong, Y. Wang, X. Ying, Z. Lin, W. An and Y. Guo, "Exploring Sparsity in Image
Super-Resolution for Efficient Inference", CVPR 2021, arXiv:2006.09603. Written from the paper; layer sizes,
initial values, the temperature schedule and details the paper leaves out checked against the authors' release
(LongguangWang/SMSR, read in its mirror The-Learning-And-Vision-Atelier-LAVA/SMSR: ``model/smsr.py``,
``trainer.py``, ``option.py``); no code taken from it.

The network: a head (3x3 conv, ReLU, 3x3 conv), ``num_block`` (5) sparse mask modules (SMM) in a chain, the
concatenation of their outputs fused by a 1x1 conv, ReLU and 3x3 conv plus the head's output, and a tail of one
3x3 conv to ``num_out_ch * upscale²`` channels and a pixel shuffle, added to the bicubic-upsampled input. An
SMM predicts a *spatial mask* (which positions are important) from its input by an hourglass (3x3 conv to C/4,
ReLU, 2x2 average pooling, 3x3 conv, ReLU, stride-2 transposed 3x3 conv to 2 logits per pixel); its sparse mask
block (SMB) has four bias-free 3x3 conv + ReLU layers whose output channels a learned *channel mask* per layer
splits into dense channels (computed at every position) and sparse channels (computed only at the important
positions), then a 1x1 conv over the four layers' outputs, RCAN's channel attention and the identity.
Both masks are two-way (off, on) choices: in training Gumbel-softmax samples at temperature ``tau`` (soft, with
gradients to the mask logits), in eval mode the hard argmax of the logits (0/1, no noise). With hard masks the
computation skipped is: sparse output channels away from the important positions, and the contributions of
sparse input channels there.

Eval paths (``sparse_eval``): ``True`` (default) computes what a sparse implementation computes
(:func:`~cspsr_arch.archs.smsr_blocks.sparse_conv`: dense -> dense channels by a convolution on the dense
channels only, the rest as gathered 3x3 neighbourhoods of the important positions times the matching kernel
slices, added back at those positions); ``False`` computes every layer densely and multiplies by the hard masks
(the training formula with 0/1 masks: two convolutions per layer, one for the dense and one for the sparse input
channels). The two give the same output up to rounding (tests/test_archs/test_smsr.py checks it in float64).

Measured on this project's CPU (``SMSR()`` at x4, untrained, eval, one thread, a 90 x 120 LR image, best of 5
runs on a shared 2-core machine under load, so +-15 %): dense-masked path 1.1-1.4 s whatever the masks; sparse
path 0.81 s with every channel dense (a plain dense network: no gathers), 1.06 s with the untrained masks (78 %
of the SMB features computed), 1.06 s at 50 % spatial / 50 % sparse channels (75 %), 0.72 s at 50 % spatial /
all channels sparse (50 %), 0.45 s at 25 % (25 %), 0.27 s at 10 % (10 %). So the sparse path beats the
dense-masked one at any density (1.3x at 78 %, 4x at 10 %), but beats a plain dense network only below about
half the features computed (1.1x at 50 %, 1.8x at 25 %, 3x at 10 %): the gathers cost about as much as the
skipped multiply-adds save until then. The paper's trained masks save 27-41 % of the FLOPs (x4-x2), where the
CPU shows little gain over a dense network, and an SMSR trained without the sparsity term (below) has no reason
to be sparser. Not measured on a GPU (where the dense path's two large convolutions per layer are cheap and
the gathers are memory-bound).

Sparsity regularisation: after every forward, ``net.sparsity`` holds the paper's sparsity term, the fraction of
the SMB layers' output features (channel x position) that are computed, averaged over the layers, the SMMs and
the batch (``mean(1 - ch + ch * spa)``; 1 = dense). In training mode it is a differentiable function of the
Gumbel-softmax masks; the paper minimises ``L = L_SR + lambda * net.sparsity``, the release's trainer with an L1
``L_SR`` and ``lambda = 0.1 * min((epoch - 1) / 50, 1)`` (epochs of 1000 iterations). In eval mode it is the hard
masks' fraction (what the sparse path computes, the FLOP saving in the SMBs). BasicSR's ``SRModel`` (this
project's ``model_type`` for VIS-only networks) computes only the configured pixel loss on the output and has no
hook for a term from the network, so the option files train SMSR *without* it (the masks then get no pressure
toward sparsity and the eval-time saving is whatever the pixel loss leaves); adding it needs a model class that
adds ``lambda * net_g.sparsity`` to its loss (none is written here).

Where the paper is silent or the choice is ours (each also stated where it is made):

* Temperature: annealed inside the network, since ``SRModel`` has no hook for it: ``tau = max(tau_min,
  1 - step / tau_steps)``, ``step`` counting the forward passes in training mode (a buffer, saved in the
  state dict). The defaults, 0.4 and 500000, are the release's ``max(1 - (epoch - 1) / 500, 0.4)`` with its
  epochs of 1000 iterations (0.4 reached at 300 k iterations). The release's trainer sets the temperature
  through a method name (``_set_tau``) its modules do not define (``_update_tau``), so as released it trains
  at tau = 1 throughout; the schedule here is the one its trainer meant.
* The Gumbel noise is drawn per pixel (and per sample) for the spatial masks and once per forward pass for the
  channel masks (they are parameters, shared by the batch), as in the release; the channel-mask logits start
  from N(0, 1), as the paper describes (the release draws them uniform on [0, 1)); either way about half the
  channels start sparse.
* The inputs of an SMB layer are split into dense and sparse channels by the *previous* layer's channel mask
  (the channels that layer produced sparse hold values only at the important positions), and sparse inputs
  reach dense outputs only at the important positions, as the paper's sparse mask convolution and the release's
  test-time path do. The release's training path splits the inputs by the current layer's mask instead (a
  mismatch between its own training and test computations); not copied.
* Odd sizes: the hourglass pools with ``ceil_mode`` (an odd last row/column is averaged over what exists)
  and its transposed conv is given the input's size, so the mask has the feature map's size for any H, W
  (the release crops test images to even sizes; for even sizes the two agree).
* Upsampler: one 3x3 conv + pixel shuffle to the output channels (the release's, and the parameter count's),
  not BasicSR's ``Upsample`` (a feature-width conv per doubling); any integer ``upscale`` (x2, x3, x4
  checked). The bicubic skip adds the mean-subtracted input upsampled (``img_range`` 255 and the DIV2K mean,
  as BasicSR's EDSR/RCAN and the release's ``rgb_range`` 255), so ``num_in_ch`` must equal ``num_out_ch``.
* Initial values: PyTorch's defaults, as in the release (no ``default_init_weights`` scaling).
* Parameters: :data:`PUBLISHED_PARAMS` are the paper's 985 K / 993 K / 1006 K (x2 / x3 / x4). ``SMSR()`` has
  1,008,078 at x4 (987,306 at x2, 995,961 at x3): the layers above plus the 5 x 4 x 64 x 2 = 2,560 channel-mask
  logits, which the published counts leave out (1,005,518 / 984,746 / 993,401 without them).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.smsr_blocks import SparseMaskModule

PUBLISHED_PARAMS = {2: 985e3, 3: 993e3, 4: 1006e3}
"""SMSR's parameter counts in the paper's comparison tables, per scale."""


@ARCH_REGISTRY.register()
class SMSR(nn.Module):
    """SMSR: sparse mask modules with learned spatial and channel masks (see the module docstring).

    ``SMSR()`` is the paper's network at x4: 64 channels, 5 SMMs of 4 layers, 1,008,078 parameters (the
    published 1006 K plus the 2,560 channel-mask logits).

    Args:
        num_in_ch (int): Input channels; equal to ``num_out_ch`` (the bicubic skip). Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        num_feat (int): Channels C of every layer. Default: 64.
        num_block (int): SMMs; the fusion sees all their outputs. Default: 5.
        upscale (int): Scale factor, any integer >= 1 (one conv and pixel shuffle). Default: 4.
        num_layer (int): 3x3 layers per SMB, each with its own channel mask. Default: 4.
        mask_reduction (int): Channel reduction of the spatial-mask hourglass (the paper's C/4). Default: 4.
        squeeze_factor (int): Channel reduction of the channel attention (RCAN's 16); C // squeeze_factor must
            be at least 1. Default: 16.
        img_range (float): The network works on images scaled to this range, as BasicSR's EDSR and the
            release (255). Default: 255.
        rgb_mean (Sequence[float]): Mean subtracted before and added after, per channel (DIV2K's, as EDSR).
            Default: (0.4488, 0.4371, 0.4040).
        tau_min (float): Lowest Gumbel-softmax temperature of the schedule. Default: 0.4.
        tau_steps (int): Training forward passes over which the temperature would fall from 1 to 0 (it stops at
            ``tau_min``); the release's pace. Default: 500000.
        sparse_eval (bool): In eval mode compute only what the hard masks keep (gathers and scatters) instead
            of the dense masked computation (two convolutions per layer); the same output, faster on the CPU
            at any mask density (module docstring). Default: True.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_out_ch: int = 3,
                 num_feat: int = 64,
                 num_block: int = 5,
                 upscale: int = 4,
                 num_layer: int = 4,
                 mask_reduction: int = 4,
                 squeeze_factor: int = 16,
                 img_range: float = 255.,
                 rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040),
                 tau_min: float = 0.4,
                 tau_steps: int = 500000,
                 sparse_eval: bool = True) -> None:
        super().__init__()
        _check(num_in_ch, num_out_ch, num_feat, upscale, squeeze_factor, rgb_mean, tau_min, tau_steps)
        self.upscale = upscale
        self.img_range = img_range
        self.tau_min = tau_min
        self.tau_steps = tau_steps
        self.sparse_eval = sparse_eval
        self.register_buffer('mean', torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer('step', torch.zeros((), dtype=torch.long))  # training forward passes (temperature)
        self.head = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.body = nn.ModuleList([SparseMaskModule(num_feat, num_layer, mask_reduction, squeeze_factor)
                                   for _ in range(num_block)])
        self.fuse = nn.Sequential(nn.Conv2d(num_feat * num_block, num_feat, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.tail = nn.Sequential(nn.Conv2d(num_feat, num_out_ch * upscale**2, 3, 1, 1), nn.PixelShuffle(upscale))
        self.sparsity = torch.ones(())

    def tau(self) -> Tensor:
        """The Gumbel-softmax temperature at the current ``step``: ``max(tau_min, 1 - step / tau_steps)``."""
        return (1 - self.step.double() / self.tau_steps).clamp(min=self.tau_min).float()

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) in [0, 1] -> (N, C, upscale * H, upscale * W); sets :attr:`sparsity` (see the module
        docstring)."""
        if self.training:
            with torch.no_grad():
                self.step += 1
        tau = self.tau()
        mean = self.mean.type_as(x)
        x = (x - mean) * self.img_range
        feat = self.head(x)
        outs, densities = self._body(feat, tau)
        self.sparsity = torch.stack(densities).mean()
        res = self.fuse(torch.cat(outs, 1)) + feat
        skip = F.interpolate(x, size=(x.shape[2] * self.upscale, x.shape[3] * self.upscale), mode='bicubic',
                             align_corners=False)
        return (self.tail(res) + skip) / self.img_range + mean

    def _body(self, feat: Tensor, tau: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        outs, densities = [], []
        for block in self.body:
            feat, density = block(feat, tau, self.sparse_eval)
            outs.append(feat)
            densities.append(density)
        return outs, densities


def _check(num_in_ch: int, num_out_ch: int, num_feat: int, upscale: int, squeeze_factor: int,
           rgb_mean: Sequence[float], tau_min: float, tau_steps: int) -> None:
    if num_in_ch != num_out_ch:
        raise ValueError(f'SMSR adds the bicubic-upsampled input to its output: num_in_ch ({num_in_ch}) must equal '
                         f'num_out_ch ({num_out_ch}).')
    if len(rgb_mean) != num_in_ch:
        raise ValueError(f'SMSR: rgb_mean needs one value per input channel ({num_in_ch}), got {list(rgb_mean)}.')
    if not isinstance(upscale, int) or isinstance(upscale, bool) or upscale < 1:
        raise ValueError(f'SMSR: upscale must be a positive integer, got {upscale!r}.')
    if num_feat // squeeze_factor < 1:
        raise ValueError(f'SMSR: num_feat // squeeze_factor must be at least 1, got {num_feat} // {squeeze_factor}.')
    if not 0 < tau_min <= 1 or tau_steps < 1:
        raise ValueError(f'SMSR: need 0 < tau_min <= 1 and tau_steps >= 1, got {tau_min} and {tau_steps}.')
