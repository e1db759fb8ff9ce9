"""Non-Local Sparse Attention (NLSA) of Mei, Fan and Zhou, "Image Super-Resolution with Non-Local Sparse
Attention", CVPR 2021: spherical locality-sensitive hashing (LSH) groups the pixels of a feature map into
buckets, and every pixel attends only to the pixels of its bucket (its chunk of the bucket-sorted sequence and
the two neighbouring chunks), over several hash rounds whose results are mixed by their softmax normalisers.

The functions are independent of any network, so that other attention modules (e.g. ENLCN) can reuse them:

* :func:`num_buckets` - the paper's bucket count for a sequence length (about one bucket per chunk);
* :func:`random_rotations` - Gaussian random projections, shape (C, n_hashes, n_buckets // 2);
* :func:`lsh_buckets` - the bucket of every vector: ``argmax([x R, -x R])`` (angular LSH, Andoni et al. 2015);
* :func:`sparse_attention` - sort by bucket, attend within chunks and their neighbours, undo the sort, mix rounds;
* :class:`NonLocalSparseAttention` - the NLSA block: the two embeddings, the attention and the residual.

Choices where the paper is silent (facts of the authors' release, github.com/HarukiYqM/Non-Local-Sparse-Attention,
read for them; none of its code is used here), and this implementation's own choices:

* Embeddings: the match (hashing / query / key) embedding is a 3x3 convolution to C / reduction channels
  (reduction 4) and the assembly (value) embedding a 1x1 convolution to C channels, both with bias and without
  activation; the key is the L2-normalised match embedding (eps 5e-5), the query is not normalised, there is no
  softmax temperature and a pixel may attend to itself.
* Buckets: ``n = L // chunk_size``, rounded up to even, capped at 128 (``max_buckets``); with fewer than two
  (a sequence shorter than one chunk) there is one bucket and no hashing - every pixel is in the one chunk
  anyway (the release fails there: it asks for an argmax over zero projections). One rotation matrix per
  forward, shared by the batch, hashing the (gradient-free) match embedding.
* Within a bucket the sort keeps the pixel order (stable sort), so the result does not depend on the sort's
  tie-breaking.
* Chunks: each chunk attends to itself and to the previous and next chunk of the sorted sequence, cyclically
  (the first chunk's previous one is the last chunk), as in the release. With only one or two chunks the
  neighbours are the chunks themselves and are counted once (the release counts them two or three times, which
  weighs the other chunk twice with two chunks).
* Padding: the sorted sequence is padded to a multiple of ``chunk_size`` and the padded keys are masked out
  (score -inf) and the padded queries dropped, so padding never changes the result (the release pads with copies
  of the last pixels, which then count twice as keys). Any length works, including lengths below one chunk.
* Rounds: the output of every round is weighted by ``softmax_r(logsumexp of its scores)`` (Reformer's rule, as
  the release), i.e. each round contributes in proportion to its softmax mass.
* Randomness: in training the rotations are drawn from torch's global generator at every forward, as in the
  release. In eval mode, if ``eval_seed`` is not None (default 0), they come from a private generator seeded with
  ``eval_seed`` at every forward, so that evaluation is reproducible and independent of the global random state;
  ``eval_seed=None`` keeps the release's behaviour (fresh rotations in eval too).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['num_buckets', 'random_rotations', 'lsh_buckets', 'sparse_attention', 'NonLocalSparseAttention']


def num_buckets(length: int, chunk_size: int, max_buckets: int = 128) -> int:
    """Bucket count for a sequence of ``length`` vectors: ``length // chunk_size`` rounded up to even, at most
    ``max_buckets``; 1 (no hashing) when the sequence is shorter than one chunk."""
    n = length // chunk_size
    n = min(n + n % 2, max_buckets)
    return n if n >= 2 else 1


def random_rotations(channels: int, n_hashes: int, n_buckets: int, generator: Optional[torch.Generator] = None,
                     device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> Tensor:
    """Standard-normal random projections of shape (channels, n_hashes, n_buckets // 2).

    With a ``generator`` they are drawn on its device (the CPU for ``torch.Generator()``) and then moved to
    ``device``, so that one seed gives the same rotations on every device.
    """
    if n_buckets != 1 and n_buckets % 2:
        raise ValueError(f'n_buckets must be 1 or even, got {n_buckets}')
    shape = (channels, n_hashes, n_buckets // 2)
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=generator.device).to(device=device, dtype=dtype)


def lsh_buckets(x: Tensor, n_hashes: int, n_buckets: int, rotations: Optional[Tensor] = None) -> Tensor:
    """Angular LSH bucket of every vector, for every hash round.

    The bucket of vector ``x`` in round ``r`` is ``argmax([x @ R_r, -(x @ R_r)])``: the index of the closest of the
    ``n_buckets`` signed projection directions; vectors at a small angle share buckets with high probability.

    Args:
        x (Tensor): Vectors, shape (N, L, C).
        n_hashes (int): Number of hash rounds.
        n_buckets (int): Number of buckets, 1 or even. With 1 every vector is in bucket 0 and ``rotations`` is
            not read.
        rotations (Tensor): Projections, shape (C, n_hashes, n_buckets // 2), shared by the batch, or
            (N, C, n_hashes, n_buckets // 2), one set per sample.

    Returns:
        Tensor: int64 bucket indices in [0, n_buckets), shape (N, n_hashes, L).
    """
    n, length, channels = x.shape
    if n_buckets == 1:
        return torch.zeros(n, n_hashes, length, dtype=torch.long, device=x.device)
    if n_buckets % 2:
        raise ValueError(f'n_buckets must be 1 or even, got {n_buckets}')
    if rotations is None:
        raise ValueError('rotations are needed for more than one bucket')
    if rotations.dim() == 3:
        rotations = rotations.unsqueeze(0).expand(n, -1, -1, -1)
    if tuple(rotations.shape) != (n, channels, n_hashes, n_buckets // 2):
        raise ValueError(f'rotations of shape {tuple(rotations.shape)} do not fit x of shape {tuple(x.shape)}, '
                         f'{n_hashes} hashes and {n_buckets} buckets')
    projected = torch.einsum('nlc,nchb->nhlb', x, rotations.to(x.dtype))
    return torch.cat([projected, -projected], dim=-1).argmax(dim=-1)


def _neighbours(t: Tensor, num_chunks: int) -> Tensor:
    """Each chunk's keys: its own and those of the previous and next chunk (cyclic), each chunk at most once.

    ``t`` has the chunks in dim 2 and the positions in a chunk in dim 3; the result concatenates along dim 3.
    """
    if num_chunks == 1:
        return t
    if num_chunks == 2:
        return torch.cat([t, t.roll(1, dims=2)], dim=3)
    return torch.cat([t, t.roll(1, dims=2), t.roll(-1, dims=2)], dim=3)


def sparse_attention(embed: Tensor, value: Tensor, buckets: Tensor, chunk_size: int,
                     eps: float = 5e-5) -> Tensor:
    """Attention within LSH buckets (NLSA's core), mixed over the hash rounds.

    For every round the sequence is stably sorted by bucket and cut into chunks of ``chunk_size``; a query attends
    to the keys of its chunk and of the neighbouring chunks (see the module docstring) with the score
    ``<q_i, k_j / |k_j|>``; the softmax-weighted values of the rounds are mixed with weights
    ``softmax_r(logsumexp_j score)``. Padding to whole chunks is masked and does not change the result.

    Args:
        embed (Tensor): Match embedding, shape (N, L, C): the queries, and normalised, the keys.
        value (Tensor): Assembly embedding, shape (N, L, D).
        buckets (Tensor): Bucket of every position in every round, int64, shape (N, R, L) (:func:`lsh_buckets`).
        chunk_size (int): Number of sorted positions per chunk.
        eps (float): Lower bound of the key norm in the normalisation.

    Returns:
        Tensor: Shape (N, L, D).
    """
    n, length, channels = embed.shape
    rounds = buckets.shape[1]
    dim_v = value.shape[-1]
    positions = torch.arange(length, device=embed.device)
    # stable sort by bucket: key = bucket * L + position is unique, so a plain sort is stable
    order = (buckets * length + positions).argsort(dim=-1)  # (N, R, L)
    undo = order.argsort(dim=-1)
    flat = order.reshape(n, rounds * length, 1)
    q = embed.gather(1, flat.expand(-1, -1, channels)).view(n, rounds, length, channels)
    v = value.gather(1, flat.expand(-1, -1, dim_v)).view(n, rounds, length, dim_v)

    num_chunks = -(-length // chunk_size)
    pad = num_chunks * chunk_size - length
    valid = torch.ones(num_chunks * chunk_size, dtype=torch.bool, device=embed.device)
    if pad:
        q = F.pad(q, (0, 0, 0, pad))
        v = F.pad(v, (0, 0, 0, pad))
        valid[length:] = False
    q = q.view(n, rounds, num_chunks, chunk_size, channels)
    v = v.view(n, rounds, num_chunks, chunk_size, dim_v)
    k = _neighbours(F.normalize(q, p=2, dim=-1, eps=eps), num_chunks)
    v = _neighbours(v, num_chunks)
    key_valid = _neighbours(valid.view(1, 1, num_chunks, chunk_size), num_chunks)  # (1, 1, K, J)

    score = q @ k.transpose(-1, -2)  # (N, R, K, chunk, keys)
    if pad:
        score = score.masked_fill(~key_valid.unsqueeze(3), float('-inf'))  # every chunk keeps a valid key
    probs = torch.softmax(score, dim=-1)
    # logsumexp from the softmax (fewer passes over the scores): lse = s_max - log p_max; its gradient is probs
    lse = score.amax(dim=-1) - probs.amax(dim=-1).log()
    out = probs @ v

    out = out.reshape(n, rounds, -1, dim_v)[:, :, :length]
    lse = lse.reshape(n, rounds, -1)[:, :, :length]
    out = out.gather(2, undo.unsqueeze(-1).expand(-1, -1, -1, dim_v))
    lse = lse.gather(2, undo)
    weights = torch.softmax(lse, dim=1).unsqueeze(-1)  # (N, R, L, 1)
    return (out * weights).sum(dim=1)


class NonLocalSparseAttention(nn.Module):
    """Non-Local Sparse Attention block: ``x + res_scale * NLSA(x)``.

    Args:
        num_feat (int): Channel number of the input and output features.
        n_hashes (int): Hash rounds; more rounds make it likelier that similar pixels share a bucket in one of
            them. Default: 4 (the paper's).
        chunk_size (int): Sorted positions per chunk; a query attends to 3 chunks of keys, and the bucket count
            is about ``L / chunk_size``. Default: 144 (the paper's).
        reduction (int): Channel reduction of the match embedding (hashing and scores are cheap at C / 4).
            Default: 4 (the release's).
        res_scale (float): Scale of the attention output before the residual sum. Default: 1.
        max_buckets (int): Cap of the bucket count (large images keep buckets wide). Default: 128 (the release's).
        eval_seed (int | None): Seed of the rotations in eval mode (reproducible evaluation); None draws fresh
            rotations from the global generator in eval too, as the release does. Default: 0.
    """

    def __init__(self, num_feat: int, n_hashes: int = 4, chunk_size: int = 144, reduction: int = 4,
                 res_scale: float = 1., max_buckets: int = 128, eval_seed: Optional[int] = 0) -> None:
        super().__init__()
        if num_feat % reduction:
            raise ValueError(f'num_feat {num_feat} is not divisible by reduction {reduction}')
        self.n_hashes = n_hashes
        self.chunk_size = chunk_size
        self.res_scale = res_scale
        self.max_buckets = max_buckets
        self.eval_seed = eval_seed
        self.conv_match = nn.Conv2d(num_feat, num_feat // reduction, 3, 1, 1)
        self.conv_assembly = nn.Conv2d(num_feat, num_feat, 1)

    def rotations(self, channels: int, n_buckets: int, device: torch.device, dtype: torch.dtype) -> Optional[Tensor]:
        """This forward's rotations (None for one bucket): random in training, seeded in eval (see the class)."""
        if n_buckets == 1:
            return None
        generator = None
        if not self.training and self.eval_seed is not None:
            generator = torch.Generator().manual_seed(self.eval_seed)
        return random_rotations(channels, self.n_hashes, n_buckets, generator, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        embed = self.conv_match(x).flatten(2).transpose(1, 2)  # (N, L, C / reduction)
        value = self.conv_assembly(x).flatten(2).transpose(1, 2)  # (N, L, C)
        n_buckets = num_buckets(h * w, self.chunk_size, self.max_buckets)
        with torch.no_grad():
            rotations = self.rotations(embed.shape[-1], n_buckets, x.device, embed.dtype)
            buckets = lsh_buckets(embed, self.n_hashes, n_buckets, rotations)
        out = sparse_attention(embed, value, buckets, self.chunk_size)
        return x + self.res_scale * out.transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return (f'n_hashes={self.n_hashes}, chunk_size={self.chunk_size}, res_scale={self.res_scale}, '
                f'max_buckets={self.max_buckets}, eval_seed={self.eval_seed}')
