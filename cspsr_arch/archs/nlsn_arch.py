"""NLSN: Mei, Fan and Zhou, "Image Super-Resolution with Non-Local Sparse Attention", CVPR 2021, as a VIS-only
single-image SR network (the LR VIS image in, the SR VIS image out).

NLSN is EDSR (Lim et al., 2017) with Non-Local Sparse Attention (NLSA, :mod:`cspsr_arch.archs.nlsa`) blocks in
the trunk: one before the first residual block and one after every eighth, i.e. 5 in the paper's network of 32
residual blocks with 256 features and residual scale 0.1 (4 hash rounds, chunk size 144). Everything else is
BasicSR's EDSR: mean shift, head convolution, the trunk of ``ResidualBlockNoBN`` (PyTorch's default
initialisation, as EDSR's), a convolution after the trunk, the global skip, pixel-shuffle upsampling and the last
convolution.

Choices where the paper is silent (facts of the authors' release, github.com/HarukiYqM/Non-Local-Sparse-Attention,
read for them; none of its code is used here):

* The attention blocks share the trunk's ``res_scale`` (0.1) and use a channel reduction of 4 in their match
  embedding; ``attn_every`` (8) places them.
* Input range: the release trains and tests with ``--rgb_range 1``, i.e. the network sees ``x - rgb_mean`` with
  ``x`` in [0, 1]. BasicSR's EDSR convention is ``(x - rgb_mean) * img_range``; it is kept, with
  ``img_range = 1`` by default, because NLSA's scores are not scale-invariant: the query is not normalised, so
  features 255 times larger would make every softmax almost one-hot.
* The paper's counts: 44.16 M parameters at x4 (43.09 M of EDSR + 5 x 0.21 M of NLSA), 41.80 M at x2; the CSPSR
  paper's Table 1 lists NLSN with 1.853 M, which is exactly this network at x4 with 64 features and 20
  residual blocks (3 NLSA blocks): 1,853,171 parameters (``SIZES['cspsr_table1']``).
* Eval mode draws the LSH rotations from a generator seeded with ``eval_seed + i`` for the i-th NLSA block, so
  that evaluation is reproducible (the release draws fresh rotations at every forward, in eval too; pass
  ``eval_seed=None`` for that). Training draws them from torch's global generator, as the release.
* Attention works on any input size (odd sizes, fewer pixels than a chunk): padding to whole chunks is masked.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
from basicsr.archs.arch_util import ResidualBlockNoBN, Upsample
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.nlsa import NonLocalSparseAttention

# (num_feat, num_block) of named sizes: the paper's network, the CSPSR paper's Table-1 NLSN (1.853 M at x4),
# and two small sizes for the CPU benchmark presets (about 0.2 M and 40 k parameters at x4).
SIZES: Dict[str, Tuple[int, int]] = {
    'paper': (256, 32),
    'cspsr_table1': (64, 20),
    'cpu': (32, 8),
    'quick': (16, 4),
}
# Parameter counts of the paper's network as published (Mei et al., 2021) and of the CSPSR paper's Table 1.
PUBLISHED_PARAMS_X4: Dict[str, float] = {'paper': 44.2e6, 'cspsr_table1': 1.853e6}


@ARCH_REGISTRY.register()
class NLSN(nn.Module):
    """NLSN network structure: EDSR with Non-Local Sparse Attention blocks in its trunk.

    Paper: Image Super-Resolution with Non-Local Sparse Attention (CVPR 2021).
    Ref git repo: https://github.com/HarukiYqM/Non-Local-Sparse-Attention

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channel number of intermediate features; divisible by ``reduction``. Default: 256 (the
            paper's).
        num_block (int): Residual blocks in the trunk. Default: 32 (the paper's).
        upscale (int): Upsampling factor. Support 2^n and 3. Default: 4.
        res_scale (float): Scale of the residual of every residual block and NLSA block; 0.1 keeps the wide
            paper network stable in training (EDSR's rule for 256 features). Default: 0.1.
        n_hashes (int): Hash rounds of every NLSA block. Default: 4 (the paper's).
        chunk_size (int): Chunk size of every NLSA block. Default: 144 (the paper's).
        reduction (int): Channel reduction of NLSA's match embedding. Default: 4 (the release's).
        attn_every (int): An NLSA block before the first residual block and after every ``attn_every``-th.
            Default: 8 (the paper's 5 blocks for 32 residual blocks).
        max_buckets (int): Cap of the LSH bucket count. Default: 128 (the release's).
        eval_seed (int | None): Base seed of the LSH rotations in eval mode (reproducible evaluation); None
            draws fresh rotations at every forward, as the release. Default: 0.
        size (str | None): A named size of ``SIZES`` ('paper', 'cspsr_table1', 'cpu', 'quick'); overrides
            ``num_feat`` and ``num_block``. Default: None.
        img_range (float): Image range the network works at, ``(x - rgb_mean) * img_range``; 1 as the release
            (``--rgb_range 1``), since the attention scores scale with it. Default: 1.
        rgb_mean (tuple[float]): Image mean in RGB orders.
            Default: (0.4488, 0.4371, 0.4040), calculated from DIV2K dataset.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_out_ch: int = 3,
                 num_feat: int = 256,
                 num_block: int = 32,
                 upscale: int = 4,
                 res_scale: float = 0.1,
                 n_hashes: int = 4,
                 chunk_size: int = 144,
                 reduction: int = 4,
                 attn_every: int = 8,
                 max_buckets: int = 128,
                 eval_seed: Optional[int] = 0,
                 size: Optional[str] = None,
                 img_range: float = 1.,
                 rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040)) -> None:
        super().__init__()
        if size is not None:
            if size not in SIZES:
                raise ValueError(f'unknown size {size!r}; known: {sorted(SIZES)}')
            num_feat, num_block = SIZES[size]
        if len(rgb_mean) != num_in_ch or num_in_ch != num_out_ch:
            raise ValueError('NLSN adds the input mean back to its output: num_in_ch, num_out_ch and '
                             f'len(rgb_mean) must agree, got {num_in_ch}, {num_out_ch}, {len(rgb_mean)}')
        self.num_feat, self.num_block, self.upscale = num_feat, num_block, upscale
        self.img_range = img_range
        self.register_buffer('mean', torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

        def attention(index: int) -> NonLocalSparseAttention:
            seed = None if eval_seed is None else eval_seed + index
            return NonLocalSparseAttention(num_feat, n_hashes=n_hashes, chunk_size=chunk_size, reduction=reduction,
                                           res_scale=res_scale, max_buckets=max_buckets, eval_seed=seed)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        body = [attention(0)]
        for i in range(num_block):
            body.append(ResidualBlockNoBN(num_feat=num_feat, res_scale=res_scale, pytorch_init=True))
            if (i + 1) % attn_every == 0:
                body.append(attention((i + 1) // attn_every))
        self.body = nn.Sequential(*body)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    @property
    def attentions(self) -> Tuple[NonLocalSparseAttention, ...]:
        """The NLSA blocks of the trunk, in order."""
        return tuple(m for m in self.body if isinstance(m, NonLocalSparseAttention))

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        x = self.conv_first(x)
        res = self.conv_after_body(self.body(x)) + x
        x = self.conv_last(self.upsample(res))
        return x / self.img_range + mean
