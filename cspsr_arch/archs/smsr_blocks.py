"""Building blocks of SMSR (``cspsr_arch/archs/smsr_arch.py``, which cites the paper and states the choices).

* :func:`gumbel_softmax` / :func:`hard_mask`: the two-way (off, on) masks, soft in training, 0/1 at test.
* :class:`SpatialMask`: the hourglass predicting a spatial mask's logits from an SMM's input.
* :class:`SparseMaskBlock` (SMB): ``num_layer`` 3x3 convolutions whose output channels are split by a channel
  mask into *dense* channels (computed everywhere) and *sparse* channels (computed only where the spatial mask is
  on), and a 1x1 convolution over all of them. :meth:`SparseMaskBlock.forward` is the paper's masked computation
  on dense tensors (soft masks in training, hard ones at test); :meth:`SparseMaskBlock.forward_sparse` computes
  the same result at test time skipping what the hard masks skip (gathered 3x3 neighbourhoods times the
  matching kernel slices, see :func:`sparse_conv`).
* :class:`SparseMaskModule` (SMM): spatial mask + SMB + channel attention + the identity.
"""
from typing import NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from basicsr.archs.rcan_arch import ChannelAttention
from torch import Tensor, nn


def gumbel_noise(like: Tensor) -> Tensor:
    """Gumbel(0, 1) samples shaped like ``like``: ``-log(-log(U))`` with U uniform on (0, 1)."""
    uniform = torch.rand_like(like).clamp_(min=torch.finfo(like.dtype).tiny)
    return -torch.log(-torch.log(uniform))


def gumbel_softmax(logits: Tensor, tau: Union[Tensor, float], dim: int, noise: Optional[Tensor] = None) -> Tensor:
    """Softmax over ``dim`` of ``(logits + G) / tau``, G Gumbel noise (drawn when ``noise`` is None).

    Toward ``tau`` = 0 it becomes the one-hot argmax of ``logits + G`` (a sample of the categorical
    distribution ``softmax(logits)``); at larger ``tau`` it is a smooth, differentiable relaxation of it.
    """
    if noise is None:
        noise = gumbel_noise(logits)
    return ((logits + noise) / tau).softmax(dim)


def hard_mask(logits: Tensor, dim: int) -> Tensor:
    """1 where the "on" logit (index 1 along ``dim``) exceeds the "off" one (index 0), else 0 (ties: off).

    The noise-free argmax; the size of ``dim`` becomes 1.
    """
    return (logits.narrow(dim, 1, 1) > logits.narrow(dim, 0, 1)).to(logits.dtype)


class SpatialMask(nn.Module):
    """Hourglass giving the spatial mask's two logits (off, on) per pixel.

    Args:
        num_feat (int): Input channels C.
        reduction (int): Inner channels are C // reduction (the paper's C/4).
    """

    def __init__(self, num_feat: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(1, num_feat // reduction)
        self.conv_in = nn.Conv2d(num_feat, mid, 3, 1, 1)
        self.pool = nn.AvgPool2d(2, ceil_mode=True)  # an odd side keeps its last row/column (mean of what exists)
        self.conv_mid = nn.Conv2d(mid, mid, 3, 1, 1)
        self.up = nn.ConvTranspose2d(mid, 2, 3, 2, 1)  # output padding 1 (even side) or 0 (odd), from output_size
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> logits (B, 2, H, W)."""
        y = self.act(self.conv_mid(self.pool(self.act(self.conv_in(x)))))
        return self.up(y, output_size=x.shape[-2:])


class Sites(NamedTuple):
    """The active (mask 1) positions of a hard spatial mask (B, 1, H, W), in ``nonzero`` order, with the indices
    that gather their neighbourhoods, computed once per mask and shared by an SMB's layers.

    Attributes:
        batch, row, col: (N, ) coordinates of the N sites.
        centre: (N, ) row of each site in the map flattened as (B * H * W, C).
        window: (N, 9) rows of each site's 3x3 neighbours (row-major) in the zero-padded map flattened as
            (B * (H + 2) * (W + 2), C).
        neighbours: (N, 9) 1 + the site number of each 3x3 neighbour, 0 where the neighbour is not a site (or is
            outside the image): rows of a (1 + N, C) table of sparse features whose row 0 is zero.
    """
    batch: Tensor
    row: Tensor
    col: Tensor
    centre: Tensor
    window: Tensor
    neighbours: Tensor

    @property
    def count(self) -> int:
        return self.batch.numel()


def active_sites(mask: Tensor) -> Sites:
    """The :class:`Sites` of a hard mask (B, 1, H, W) of 0/1."""
    num, _, height, width = mask.shape
    batch, row, col = mask[:, 0].nonzero(as_tuple=True)
    table = torch.zeros((num, height + 2, width + 2), dtype=torch.long, device=mask.device)
    table[batch, row + 1, col + 1] = torch.arange(1, batch.numel() + 1, device=mask.device)
    shift = torch.arange(3, device=mask.device)
    win_row = row[:, None, None] + shift[None, :, None]  # padded coordinates of the 3x3 window (N, 3, 1)
    win_col = col[:, None, None] + shift[None, None, :]  # (N, 1, 3)
    window = ((batch[:, None, None] * (height + 2) + win_row) * (width + 2) + win_col).reshape(-1, 9)
    neighbours = table[batch[:, None, None], win_row, win_col].reshape(-1, 9)
    centre = (batch * height + row) * width + col
    return Sites(batch, row, col, centre, window, neighbours)


def _check_kernel(kernel_size: int) -> None:
    if kernel_size not in (1, 3):
        raise ValueError(f'sparse convolution: kernel size 1 or 3 only, got {kernel_size}.')


def gather_dense(feat: Tensor, sites: Sites, kernel_size: int) -> Tensor:
    """The k x k neighbourhoods (zero-padded) of a dense map (B, C, H, W) at the sites: (N, k * k * C), ordered
    as a convolution weight (O, C, k, k) permuted to (O, k, k, C) and flattened (:func:`flat_kernel`)."""
    _check_kernel(kernel_size)
    channels = feat.shape[1]
    if kernel_size == 1:
        return feat.permute(0, 2, 3, 1).reshape(-1, channels)[sites.centre]
    rows = F.pad(feat, (1, 1, 1, 1)).permute(0, 2, 3, 1).reshape(-1, channels)
    return rows[sites.window.reshape(-1)].reshape(sites.count, 9 * channels)


def gather_sparse(values: Tensor, sites: Sites, kernel_size: int) -> Tensor:
    """The k x k neighbourhoods of sparse features (N, C), held only at the sites (zero at every other position):
    (N, k * k * C), ordered as :func:`gather_dense`."""
    _check_kernel(kernel_size)
    if kernel_size == 1:
        return values
    rows = torch.cat([values.new_zeros(1, values.shape[1]), values])
    return rows[sites.neighbours.reshape(-1)].reshape(sites.count, 9 * values.shape[1])


def flat_kernel(weight: Tensor) -> Tensor:
    """A convolution weight (O, C, k, k) as the (k * k * C, O) matrix that multiplies gathered neighbourhoods."""
    return weight.permute(0, 2, 3, 1).flatten(1).t()


def sparse_conv(dense: Tensor, sparse: Tensor, weight: Tensor, split_in: Tensor, split_out: Tensor,
                sites: Sites) -> Tuple[Tensor, Tensor]:
    """One bias-free convolution (k = 1 or 3, stride 1, zero padding k // 2) on split features.

    The input channels are dense (``~split_in``: ``dense`` (B, Cd, H, W), every position) or sparse
    (``split_in``: ``sparse`` (N, Cs), only at the sites, zero elsewhere); so are the output channels
    (``split_out``). Computed: dense -> dense everywhere (a convolution); dense -> sparse and sparse -> both
    only at the sites (gathered neighbourhoods times kernel slices). Sparse inputs reach dense outputs only at
    the sites, as in the masked computation of :meth:`SparseMaskBlock.forward`.

    Returns:
        The dense (B, Cd', H, W) and sparse (N, Cs') output channels, each in increasing channel order.
    """
    k = weight.shape[-1]
    w_dense_in = weight[:, ~split_in]
    w_out_dense, w_out_sparse = w_dense_in[~split_out], w_dense_in[split_out]
    if dense.shape[1] and w_out_dense.shape[0]:
        out_dense = F.conv2d(dense, w_out_dense, padding=k // 2)
    else:  # conv2d returns no channels for no input channels, and fails for no output channels
        out_dense = dense.new_zeros(dense.shape[0], w_out_dense.shape[0], *dense.shape[2:])
    if dense.shape[1] and w_out_sparse.shape[0]:
        out_sparse = gather_dense(dense, sites, k) @ flat_kernel(w_out_sparse)
    else:
        out_sparse = dense.new_zeros(sites.count, w_out_sparse.shape[0])
    if split_in.any():
        w_sparse_in = weight[:, split_in]
        w_sparse_in = torch.cat([w_sparse_in[~split_out], w_sparse_in[split_out]])  # dense outputs first
        both = gather_sparse(sparse, sites, k) @ flat_kernel(w_sparse_in)
        num_dense = out_dense.shape[1]
        out_dense[sites.batch, :, sites.row, sites.col] += both[:, :num_dense]
        out_sparse = out_sparse + both[:, num_dense:]
    return out_dense, out_sparse


class SparseMaskBlock(nn.Module):
    """SMB: ``num_layer`` bias-free 3x3 conv + ReLU layers, a channel mask per layer, and a 1x1 conv over the
    concatenated layer outputs.

    Args:
        num_feat (int): Channels C of every layer.
        num_layer (int): 3x3 layers (the paper's 4).
    """

    def __init__(self, num_feat: int, num_layer: int = 4) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False) for _ in range(num_layer)])
        self.collect = nn.Conv2d(num_feat * num_layer, num_feat, 1)
        # channel-mask logits (off = dense, on = sparse) per layer and channel, N(0, 1) as the paper describes
        self.ch_logits = nn.Parameter(torch.randn(num_layer, num_feat, 2))

    def forward(self, x: Tensor, spa: Tensor, ch: Tensor) -> Tensor:
        """Masked computation on dense tensors: soft masks in training, hard ones at test (the reference the
        sparse path equals).

        Args:
            x: Input (B, C, H, W).
            spa: Spatial mask (B, 1, H, W), 1 = important position.
            ch: Channel masks (num_layer, C), 1 = sparse channel (computed only where ``spa`` is on).

        A layer's output channel gets ``conv(dense inputs) * (1 - ch + ch * spa) + conv(sparse inputs) * spa``,
        its inputs split by the previous layer's channel mask (the first layer's input is dense).
        """
        feats = []
        feat = x
        for i, conv in enumerate(self.convs):
            ch_out = ch[i].view(1, -1, 1, 1)
            keep = 1 - ch_out + ch_out * spa
            if i == 0:
                feat = conv(feat) * keep
            else:
                ch_in = ch[i - 1].view(1, -1, 1, 1)
                feat = conv(feat * (1 - ch_in)) * keep + conv(feat * ch_in) * spa
            feat = F.relu(feat)
            feats.append(feat)
        return self.collect(torch.cat(feats, 1))

    def forward_sparse(self, x: Tensor, spa: Tensor, ch: Tensor) -> Tensor:
        """The result of :meth:`forward` for hard masks, computing sparse channels only at the active positions.

        Args:
            x: Input (B, C, H, W).
            spa: Hard spatial mask (B, 1, H, W) of 0/1.
            ch: Hard channel masks (num_layer, C) of 0/1.
        """
        sites = active_sites(spa)
        split = ch.bool()
        dense, sparse = x, x.new_zeros(sites.count, 0)
        split_in = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device)
        dense_outs, sparse_outs = [], []
        for i, conv in enumerate(self.convs):
            dense, sparse = sparse_conv(dense, sparse, conv.weight, split_in, split[i], sites)
            dense, sparse = F.relu(dense), F.relu(sparse)
            dense_outs.append(dense)
            sparse_outs.append(sparse)
            split_in = split[i]
        all_out = torch.zeros(self.collect.out_channels, dtype=torch.bool, device=x.device)
        out, _ = sparse_conv(torch.cat(dense_outs, 1), torch.cat(sparse_outs, 1), self.collect.weight,
                             split.reshape(-1), all_out, sites)
        return out + self.collect.bias.view(1, -1, 1, 1)

    @staticmethod
    def density(spa: Tensor, ch: Tensor) -> Tensor:
        """Fraction of the layers' output features (channel x position) that are computed, averaged over the
        layers and the batch: ``mean(1 - ch + ch * spa)``; 1 for a dense block."""
        sparse_share = ch.mean(dim=1)  # (num_layer, )
        return (1 - sparse_share + sparse_share * spa.mean()).mean()


class SparseMaskModule(nn.Module):
    """SMM: spatial mask, SMB, channel attention and the identity.

    Args:
        num_feat (int): Channels C.
        num_layer (int): 3x3 layers of the SMB.
        mask_reduction (int): Channel reduction of the spatial-mask hourglass.
        squeeze_factor (int): Channel reduction of the channel attention.
    """

    def __init__(self, num_feat: int, num_layer: int = 4, mask_reduction: int = 4, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.spa_mask = SpatialMask(num_feat, mask_reduction)
        self.body = SparseMaskBlock(num_feat, num_layer)
        self.ca = ChannelAttention(num_feat, squeeze_factor)

    def masks(self, x: Tensor, tau: Union[Tensor, float]) -> Tuple[Tensor, Tensor]:
        """Spatial (B, 1, H, W) and channel (num_layer, C) masks: Gumbel-softmax samples in training mode,
        hard 0/1 in eval mode."""
        spa_logits = self.spa_mask(x)
        if self.training:
            spa = gumbel_softmax(spa_logits, tau, 1).narrow(1, 1, 1)
            ch = gumbel_softmax(self.body.ch_logits, tau, -1)[..., 1]
        else:
            spa = hard_mask(spa_logits, 1)
            ch = hard_mask(self.body.ch_logits, -1)[..., 0]
        return spa, ch

    def forward(self, x: Tensor, tau: Union[Tensor, float] = 1.0, sparse: bool = False) -> Tuple[Tensor, Tensor]:
        """-> (output (B, C, H, W), density of the SMB's computation); ``sparse`` takes the sparse path in
        eval mode."""
        spa, ch = self.masks(x, tau)
        if sparse and not self.training:
            out = self.body.forward_sparse(x, spa, ch)
        else:
            out = self.body(x, spa, ch)
        return self.ca(out) + x, self.body.density(spa, ch)
