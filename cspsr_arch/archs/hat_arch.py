"""HAT (Hybrid Attention Transformer, Chen et al., CVPR 2023) as a BasicSR arch, registered as ``HAT``.

The network is the one of the ``spandrel`` package (``spandrel.architectures.HAT.HAT``); this module
only adapts it to BasicSR: named constructor arguments (checked by the strict option checker), a
plain ``forward(lq)`` like EDSR's, and padding of the input to a multiple of the attention window
inside the wrapper, so any LR size works and the output is exactly ``upscale`` times the input.
spandrel is imported when a HAT is built, not when ``cspsr_arch`` is imported (it loads every
architecture it knows, which takes seconds).
"""
from typing import Sequence

import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn


def pad_to_window(x: Tensor, window_size: int) -> Tensor:
    """Pad ``x`` (n, c, h, w) at the bottom and right to multiples of ``window_size``.

    Reflection padding where the image is large enough for it, edge replication otherwise (reflection
    needs a pad smaller than the side).

    Args:
        x (Tensor): Input batch.
        window_size (int): The multiple.

    Returns:
        Tensor: The padded batch (``x`` itself when nothing is needed).
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % window_size, (-w) % window_size
    if pad_h == 0 and pad_w == 0:
        return x
    mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


@ARCH_REGISTRY.register()
class HAT(nn.Module):
    """HAT from ``spandrel``, padded to its window size. Defaults: the paper's HAT (x4, 20.8 M parameters).

    Args:
        num_in_ch (int): Image channels (input = output). Default: 3.
        upscale (int): Scale factor (2, 3, 4 or 8). Default: 4.
        embed_dim (int): Transformer width. Default: 180.
        depths (Sequence[int]): Hybrid attention blocks per residual group. Default: six groups of 6.
        num_heads (Sequence[int]): Attention heads per group (must divide ``embed_dim``). Default: 6 each.
        window_size (int): Attention window; inputs are padded to a multiple of it. Default: 16.
        compress_ratio (int): Channel compression of the channel-attention block. Default: 3.
        squeeze_factor (int): Squeeze factor of the channel attention; ``embed_dim // compress_ratio //
            squeeze_factor`` must be at least 1. Default: 30.
        conv_scale (float): Weight of the convolution branch. Default: 0.01.
        overlap_ratio (float): Overlap of the overlapping cross-attention windows. Default: 0.5.
        mlp_ratio (float): Hidden width of the MLPs relative to ``embed_dim``. Default: 2.
        drop_path_rate (float): Stochastic depth rate. Default: 0.1.
        num_feat (int): Channels of the reconstruction head. Default: 64.
        img_range (float): Input scaling. Default: 1.
        resi_connection (str): ``'1conv'`` or ``'identity'`` after the body. Default: ``'1conv'``.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 upscale: int = 4,
                 embed_dim: int = 180,
                 depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
                 num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
                 window_size: int = 16,
                 compress_ratio: int = 3,
                 squeeze_factor: int = 30,
                 conv_scale: float = 0.01,
                 overlap_ratio: float = 0.5,
                 mlp_ratio: float = 2.,
                 drop_path_rate: float = 0.1,
                 num_feat: int = 64,
                 img_range: float = 1.,
                 resi_connection: str = '1conv') -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f'HAT: depths {list(depths)} and num_heads {list(num_heads)} must have the same length.')
        if any(embed_dim % heads for heads in num_heads):
            raise ValueError(f'HAT: every num_heads entry must divide embed_dim ({embed_dim}), got {list(num_heads)}.')
        if embed_dim // compress_ratio // squeeze_factor < 1:
            raise ValueError(f'HAT: embed_dim // compress_ratio // squeeze_factor is 0 ({embed_dim} // {compress_ratio}'
                             f' // {squeeze_factor}); lower compress_ratio or squeeze_factor.')
        from spandrel.architectures.HAT import HAT as SpandrelHAT
        self.upscale, self.window_size = upscale, window_size
        # img_size only sets the nominal resolution, which must exceed the window (else spandrel shrinks it)
        self.net = SpandrelHAT(img_size=max(64, 2 * window_size), in_chans=num_in_ch, embed_dim=embed_dim,
                               depths=tuple(depths), num_heads=tuple(num_heads), window_size=window_size,
                               compress_ratio=compress_ratio, squeeze_factor=squeeze_factor, conv_scale=conv_scale,
                               overlap_ratio=overlap_ratio, mlp_ratio=mlp_ratio, drop_path_rate=drop_path_rate,
                               upscale=upscale, img_range=img_range, upsampler='pixelshuffle',
                               resi_connection=resi_connection, num_feat=num_feat)

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve ``x`` (n, c, h, w) in [0, 1] to (n, c, upscale*h, upscale*w)."""
        h, w = x.shape[-2:]
        out = self.net(pad_to_window(x, self.window_size))
        return out[..., :h * self.upscale, :w * self.upscale]
