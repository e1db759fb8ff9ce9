"""The parts of :class:`~cspsr_arch.archs.masasr_arch.MASASR` (Lu et al., MASA-SR, CVPR 2021; see that module).

* :func:`coarse_match`, :func:`fine_match` and :class:`CoarseToFineMatch`: the matching of the Match &
  Extraction Module (MEM): one match per LR block on the whole Ref↓, then a dense match of every LR pixel in
  a window of Ref↓ around its block's match (the "matching acceleration"); :func:`exhaustive_match` is the
  dense search over the whole Ref↓ that it accelerates (for tests and comparisons).
* :func:`transfer`: the extraction of the MEM, the Ref features at t x the LR size moved to the LR pixels'
  matches (t x t cells of 3 x 3 patches, overlaps averaged) and weighted by the match's similarity.
* :class:`SpatialAdaptation` (SAM) and :class:`DualResidualAggregation` (DRAM).

Every match is a flat index ``y * W_r + x`` on the Ref↓ grid (``W_r`` its width); a patch is the 3 x 3
neighbourhood of a feature map (``C * 9`` values) and patches are compared by cosine similarity.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def patch_vectors(feat: Tensor, dilation: int = 1, padding: int = 0) -> Tensor:
    """Unit-norm 3 x 3 patch vectors of ``feat`` (n, C, h, w): (n, L, C*9), ``L`` the ``F.unfold`` positions."""
    patches = F.unfold(feat, 3, dilation=dilation, padding=padding)
    return F.normalize(patches, dim=1).transpose(1, 2)


def _grid(feat: Tensor, block: int) -> Tuple[int, int]:
    height, width = feat.shape[-2:]
    if height % block or width % block:
        raise ValueError(f'The LR features ({height}x{width}) must be a whole number of {block}x{block} blocks.')
    return height // block, width // block


def _check_ref(ref: Tensor) -> None:
    if min(ref.shape[-2:]) < 3:
        raise ValueError(f'Ref↓ ({tuple(ref.shape[-2:])}) must be at least 3x3: matches are centres of 3x3 patches.')


def coarse_match(lr: Tensor, ref: Tensor, block: int, dilations: Sequence[int] = (1, 2, 3)) -> Tensor:
    """The match of every ``block`` x ``block`` block of ``lr`` on the whole ``ref`` (MEM, first stage).

    A block is represented by the 3 x 3 patches around its centre pixel, ``(block - 1) // 2`` from its top
    left (the release's centre for even blocks), sampled at each dilation; each is compared by cosine
    similarity with the patches of the same dilation centred on every pixel of ``ref`` (zero-padded at its
    border), and the sum over the dilations is maximised: the dilations widen the context of one block match
    at the cost of three patch comparisons instead of ``block**2``.

    Args:
        lr (Tensor): LR features (n, C, by*block, bx*block).
        ref (Tensor): Ref↓ features (n, C, h_r, w_r).
        block (int): Block size in LR pixels.
        dilations (Sequence[int]): Dilations of the centre patches; the release's (1, 2, 3).

    Returns:
        Tensor: (n, by, bx) long, the flat index on the Ref↓ grid of each block centre's match.
    """
    _check_ref(ref)
    blocks_y, blocks_x = _grid(lr, block)
    n, channels = lr.shape[:2]
    reach = max(dilations)
    padded = F.pad(lr, (reach, ) * 4, mode='replicate')  # reached only if patches leave the image (not at 8, 3)
    centre_y = torch.arange(blocks_y, device=lr.device) * block + (block - 1) // 2 + reach
    centre_x = torch.arange(blocks_x, device=lr.device) * block + (block - 1) // 2 + reach
    taps = torch.tensor([-1, 0, 1], device=lr.device)
    score = lr.new_zeros(())
    for dilation in dilations:
        rows, cols = centre_y[:, None] + dilation * taps, centre_x[:, None] + dilation * taps  # (by, 3), (bx, 3)
        patch = padded[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # (n, C, by, bx, 3, 3)
        query = F.normalize(patch.permute(0, 2, 3, 1, 4, 5).reshape(n, blocks_y * blocks_x, channels * 9), dim=2)
        keys = patch_vectors(ref, dilation, dilation)  # (n, h_r*w_r, C*9)
        score = score + query @ keys.transpose(1, 2)
    return score.argmax(dim=2).view(n, blocks_y, blocks_x)


def window_size(block: int, ratio: float, ref_size: Tuple[int, int]) -> Tuple[int, int]:
    """Candidate centres per side of the fine-search window: ``2 * int(block * ratio / 2) + 1`` (13 for the
    release's block 8 and ratio 1.5), at most the ``ref_size - 2`` centres of whole 3 x 3 patches of Ref↓."""
    size = 2 * int(block * ratio / 2) + 1
    return min(size, ref_size[0] - 2), min(size, ref_size[1] - 2)


def window_origins(centres: Tensor, size: Tuple[int, int], ref_size: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """Top-left candidate centre (y, x) of each block's window: centred on its coarse match, moved inside Ref↓.

    Args:
        centres (Tensor): Coarse matches, flat indices (n, by, bx).
        size (Tuple[int, int]): Window size in candidate centres, from :func:`window_size`.
        ref_size (Tuple[int, int]): (h_r, w_r) of Ref↓.
    """
    height, width = ref_size
    top = (centres // width - size[0] // 2).clamp(1, height - 1 - size[0])
    left = (centres % width - size[1] // 2).clamp(1, width - 1 - size[1])
    return top, left


def fine_match(lr: Tensor, ref: Tensor, centres: Tensor, block: int, ratio: float = 1.5) -> Tuple[Tensor, Tensor]:
    """The dense match of every LR pixel in its block's window of ``ref`` (MEM, second stage).

    The patch of each LR pixel (the LR features replicate-padded by one pixel, so blocks see their
    neighbours' pixels and only the image border is replicated) is compared with the whole 3 x 3 patches of
    ``ref`` centred in the block's window (:func:`window_size` candidates per side, around the block's coarse
    match); the best one is the pixel's match and its cosine similarity the match's confidence.

    Args:
        lr (Tensor): LR features (n, C, by*block, bx*block).
        ref (Tensor): Ref↓ features (n, C, h_r, w_r).
        centres (Tensor): :func:`coarse_match` (n, by, bx).
        block (int): Block size.
        ratio (float): Window side over block side (the release's Ref↓ block of 1.5 x the LR block).

    Returns:
        Tuple[Tensor, Tensor]: Matches (n, H, W) long (flat indices on the Ref↓ grid, centres of whole
        patches) and their similarities (n, 1, H, W).
    """
    _check_ref(ref)
    blocks_y, blocks_x = _grid(lr, block)
    n, channels, height, width = lr.shape
    ref_size = (ref.size(2), ref.size(3))
    size = window_size(block, ratio, ref_size)
    top, left = window_origins(centres, size, ref_size)
    dim = channels * 9
    query = patch_vectors(F.pad(lr, (1, 1, 1, 1), mode='replicate'))  # (n, H*W, C*9)
    query = query.view(n, blocks_y, block, blocks_x, block, dim).permute(0, 1, 3, 2, 4, 5)
    query = query.reshape(n, blocks_y * blocks_x, block * block, dim)
    keys = patch_vectors(ref)  # (n, (h_r-2)*(w_r-2), C*9); centre (y, x) at (y-1)*(w_r-2) + x-1
    ys = top[..., None] + torch.arange(size[0], device=lr.device)  # (n, by, bx, Dy)
    xs = left[..., None] + torch.arange(size[1], device=lr.device)
    flat = (ys[..., :, None] - 1) * (ref_size[1] - 2) + xs[..., None, :] - 1  # (n, by, bx, Dy, Dx)
    batch = torch.arange(n, device=lr.device)[:, None]
    candidates = keys[batch, flat.view(n, -1)].view(n, blocks_y * blocks_x, size[0] * size[1], dim)
    score, best = (query @ candidates.transpose(2, 3)).max(dim=3)  # (n, B, block**2)
    match_y = top.view(n, -1, 1) + best // size[1]
    match_x = left.view(n, -1, 1) + best % size[1]
    index = match_y * ref_size[1] + match_x

    def to_image(t: Tensor) -> Tensor:
        t = t.view(n, blocks_y, blocks_x, block, block).permute(0, 1, 3, 2, 4)
        return t.reshape(n, height, width)

    return to_image(index), to_image(score)[:, None]


def exhaustive_match(lr: Tensor, ref: Tensor) -> Tuple[Tensor, Tensor]:
    """The dense match of every LR pixel on the whole ``ref`` (the search MASA accelerates); patches as in
    :func:`fine_match`, so the two agree wherever the best match lies in the block's window.

    Returns:
        Tuple[Tensor, Tensor]: Matches (n, H, W) (flat Ref↓ indices) and similarities (n, 1, H, W).
    """
    _check_ref(ref)
    n, _, height, width = lr.shape
    inner = ref.size(3) - 2
    query = patch_vectors(F.pad(lr, (1, 1, 1, 1), mode='replicate'))
    score, best = (query @ patch_vectors(ref).transpose(1, 2)).max(dim=2)
    index = (best // inner + 1) * ref.size(3) + best % inner + 1
    return index.view(n, height, width), score.view(n, 1, height, width)


class CoarseToFineMatch(nn.Module):
    """The matching of the MEM: :func:`coarse_match` then :func:`fine_match` (no weights; a module so that a
    forward hook sees the matches).

    Args:
        block (int): LR block size; the release's 8.
        ratio (float): Search-window side over block side; the release's 1.5.
        dilations (Sequence[int]): Dilations of the block patches of the coarse match; the release's (1, 2, 3).
    """

    def __init__(self, block: int = 8, ratio: float = 1.5, dilations: Sequence[int] = (1, 2, 3)) -> None:
        super().__init__()
        self.block, self.ratio, self.dilations = block, ratio, tuple(dilations)

    def forward(self, lr: Tensor, ref: Tensor) -> Tuple[Tensor, Tensor]:
        """Matches (n, H, W) on the Ref↓ grid and similarities (n, 1, H, W) of the LR features ``lr``."""
        with torch.no_grad():  # argmax and indices: no gradient (the similarities are recomputed below)
            centres = coarse_match(lr, ref, self.block, self.dilations)
            index, _ = fine_match(lr, ref, centres, self.block, self.ratio)
        return index, match_similarity(lr, ref, index)


def match_similarity(lr: Tensor, ref: Tensor, index: Tensor) -> Tensor:
    """Cosine similarity (n, 1, H, W) of each LR patch with its match ``index`` (n, H, W) on ``ref``, with a
    gradient: the confidence that weights the transferred features is what trains the encoder's matching."""
    n, _, height, width = lr.shape
    inner = ref.size(3) - 2
    query = patch_vectors(F.pad(lr, (1, 1, 1, 1), mode='replicate'))  # (n, H*W, C*9)
    flat = (index // ref.size(3) - 1) * inner + index % ref.size(3) - 1
    keys = patch_vectors(ref)[torch.arange(n, device=lr.device)[:, None], flat.view(n, -1)]
    return (query * keys).sum(dim=2).view(n, 1, height, width)


def transfer(ref_feat: Tensor, index: Tensor, score: Tensor, scale: int) -> Tensor:
    """The Ref features at t x the LR size moved to the LR pixels' matches, weighted by the similarities.

    For each LR pixel p with match q (a patch centre on the Ref↓ grid), the 3t x 3t patch of ``ref_feat``
    around cell q (t x t cells per Ref↓ pixel) is placed around cell p of the output; overlapping patches are
    averaged (the release's unfold / gather / fold, written as nine gathers of t x t cells so that no
    C*9t² vector per pixel is stored); the result is multiplied by the similarity, bilinearly upsampled by t.

    Args:
        ref_feat (Tensor): Ref features (n, C, t*h_r, t*w_r).
        index (Tensor): Matches (n, H, W), flat on the (h_r, w_r) grid, never on its border.
        score (Tensor): Similarities (n, 1, H, W).
        scale (int): t.

    Returns:
        Tensor: (n, C, t*H, t*W).
    """
    n, height, width = index.shape
    ref_width = ref_feat.size(3) // scale
    cells = F.pixel_unshuffle(ref_feat, scale).flatten(2).transpose(1, 2).contiguous()  # rows (n, h_r*w_r, C*t*t)
    batch = torch.arange(n, device=index.device)[:, None, None]
    total = ref_feat.new_zeros(n, height + 2, width + 2, cells.size(2))
    count = ref_feat.new_zeros(1, height + 2, width + 2, 1)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):  # the patch of pixel p' puts cell q(p') + d at p' + d
            total[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width] += cells[batch, index + dy * ref_width + dx]
            count[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width] += 1
    total = (total[:, 1:-1, 1:-1] / count[:, 1:-1, 1:-1]).permute(0, 3, 1, 2)
    out = F.pixel_shuffle(total, scale)
    if scale > 1:
        score = F.interpolate(score, scale_factor=scale, mode='bilinear', align_corners=False)
    return out * score


def channel_stats(feat: Tensor, eps: float = 0.) -> Tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation over the pixels of ``feat`` (n, C, h, w): (n, C, 1, 1) each,
    the standard deviation ``sqrt(population variance + eps)``."""
    var, mean = torch.var_mean(feat, dim=(2, 3), keepdim=True, correction=0)
    return mean, (var + eps).sqrt()


class SpatialAdaptation(nn.Module):
    """Spatial Adaptation Module (SAM): the Ref features remapped to the statistics of the LR features.

    ``out = (ref - mean(ref)) / std(ref) * (std(lr) + gamma) + (mean(lr) + beta)``, the statistics per channel
    over the pixels, ``gamma`` and ``beta`` spatial maps from ``relu(conv([lr, ref]))`` by one 3x3 convolution
    each. Their convolutions start at zero (as in the release), so an untrained SAM is the pure statistics
    remapping: the Ref features take the LR features' mean and standard deviation, channel by channel.

    Choices where the paper is silent: the standard deviations are population ones (the release takes the
    unbiased one for the LR features and InstanceNorm's population one for the Ref); ``eps`` 1e-5
    (InstanceNorm's) on both variances, so the remapped features have the LR features' standard deviation to
    within ``eps``. The release has none on the LR side; there a channel that is constant over the image (a
    ReLU channel that has died) has a zero standard deviation, whose square root has an infinite gradient: with
    the learned CVM in front, training at lr 1e-3 produced NaN at iteration 132.

    Args:
        num_feat (int): Channels C.
        eps (float): Added to both variances before their square roots. Default: 1e-5.
    """

    def __init__(self, num_feat: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.shared = nn.Sequential(nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.beta = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        for conv in (self.gamma, self.beta):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, lr: Tensor, ref: Tensor) -> Tensor:
        """``ref`` (n, C, H, W) with the statistics of ``lr`` (n, C, H, W), adapted per pixel."""
        style = self.shared(torch.cat([lr, ref], dim=1))
        lr_mean, lr_std = channel_stats(lr, self.eps)
        ref_mean, ref_std = channel_stats(ref, self.eps)
        return (ref - ref_mean) / ref_std * (lr_std + self.gamma(style)) + lr_mean + self.beta(style)


class DualResidualAggregation(nn.Module):
    """Dual Residual Aggregation Module (DRAM): fuses LR features with Ref features at twice their size.

    Ref branch: the Ref features downsampled (strided 3x3 convolution) minus the LR features, upsampled
    (transposed convolution) and added to the Ref features; LR branch: the LR features minus the downsampled
    Ref features, added to the LR features and upsampled; a 3x3 convolution fuses the two (ReLU after each
    layer, as in the release).

    Args:
        num_feat (int): Channels C.
    """

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.down_ref = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.up_ref = nn.ConvTranspose2d(num_feat, num_feat, 3, 2, 1, output_padding=1)
        self.down_lr = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.up_lr = nn.ConvTranspose2d(num_feat, num_feat, 3, 2, 1, output_padding=1)
        self.fuse = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, lr: Tensor, ref: Tensor) -> Tensor:
        """LR features (n, C, H, W) and Ref features (n, C, 2H, 2W) -> (n, C, 2H, 2W)."""
        ref_branch = self.act(self.up_ref(self.act(self.down_ref(ref)) - lr)) + ref
        lr_branch = self.act(self.up_lr(2 * lr - self.act(self.down_lr(ref))))
        return self.act(self.fuse(torch.cat([ref_branch, lr_branch], dim=1)))
