"""Super-resolution of one VIS/NIR pair of any size: whole, or tile by tile with bounded memory.

Tiling keeps the stereo geometry: each tile of the left (VIS) image is processed together with the NIR
image over the same rows and a wider range of columns. A left pixel at column x matches the right (NIR)
image at ``x - d`` with ``d`` in ``[min_disp, max_disp]`` (LR pixels), so the input window of a tile
reaches ``max_disp`` columns further left and ``-min_disp`` further right than the tile, on top of a
context margin (``overlap``) on every side. VIS, NIR (and a given disparity) are cut from the same window
(the NIR of a network with ``nir_scale`` at ``nir_scale`` x the window's coordinates), the network runs on
it, and only the super-resolved tile itself is kept: tiles never blend, and as the margins grow the
result approaches the untiled one. It stays approximate because CSFT's channel
attention pools over the whole network input (a tile's statistics are not the image's), and with
``norm: instance`` the normalisation does too.

VIS-only networks (:class:`~cspsr_arch.infer.vis_only.VisOnlySR`) run the same way without a NIR image
(``nir`` None) and without a disparity margin.

The optional self-ensemble averages the output with that of the vertically flipped pair, flipped back:
a vertical flip keeps the horizontal epipolar geometry (a horizontal flip would swap the views).
"""
import math
from typing import Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from cspsr_arch.infer.vis_only import InferenceNet


class Box(NamedTuple):
    """Rows ``y0:y1`` and columns ``x0:x1`` of an image (LR pixels)."""

    y0: int
    y1: int
    x0: int
    x1: int


def tile_boxes(height: int, width: int, tile: Optional[int]) -> List[Box]:
    """Split an image into a grid of tiles of at most ``tile`` x ``tile`` pixels.

    Tiles are as even as possible (sizes differ by at most one pixel), so any image size works.

    Args:
        height (int): Image height.
        width (int): Image width.
        tile (int | None): Largest tile side; None or 0: one tile, the whole image.

    Returns:
        list[Box]: Row-major tiles that cover the image exactly once.
    """
    if not tile:
        return [Box(0, height, 0, width)]
    rows, cols = math.ceil(height / tile), math.ceil(width / tile)
    ys = [round(i * height / rows) for i in range(rows + 1)]
    xs = [round(j * width / cols) for j in range(cols + 1)]
    return [Box(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(rows) for j in range(cols)]


def input_window(core: Box, height: int, width: int, overlap: int, disp_margins: Tuple[int, int]) -> Box:
    """The input window a tile needs: ``overlap`` pixels of context on each side, plus the disparity range.

    Args:
        core (Box): The tile.
        height (int): Image height.
        width (int): Image width.
        overlap (int): Context margin on every side.
        disp_margins (tuple[int, int]): Extra columns on the left (largest positive disparity) and on the
            right (largest negative disparity, as a positive number).

    Returns:
        Box: The window, clipped to the image.
    """
    left, right = disp_margins
    return Box(max(core.y0 - overlap, 0), min(core.y1 + overlap, height),
               max(core.x0 - overlap - left, 0), min(core.x1 + overlap + right, width))


def disparity_margins(net: InferenceNet, disp: Optional[Tensor]) -> Tuple[int, int]:
    """Columns a tile window must add on its left and right so every match of the tile is inside it.

    Args:
        net (CSPSR): The network: with ``cvm='learned'`` its search range ``[min_disp, max_disp]`` counts;
            with ``cvm='none'`` (and VIS-only networks) nothing is warped.
        disp (Tensor | None): Given left disparity (``cvm='given'``), LR pixels.

    Returns:
        tuple[int, int]: ``(left, right)`` margins in LR pixels.
    """
    if net.cvm == 'learned':
        low, high = net.cvm_net.min_disp, net.cvm_net.max_disp
    elif net.cvm == 'given' and disp is not None:
        low, high = float(disp.min()), float(disp.max())
    else:
        return 0, 0
    return max(math.ceil(high), 0) + 1, max(math.ceil(-low), 0) + 1  # +1: bilinear sampling reads x and x+1


def _forward(net: InferenceNet, vis: Tensor, nir: Optional[Tensor],
             disp: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
    out = net(vis, nir, disp)
    return out.sr, out.nir_sr


def forward_pair(net: InferenceNet, vis: Tensor, nir: Optional[Tensor], disp: Optional[Tensor] = None,
                 ensemble: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """Run ``net`` on one window, optionally averaged with the vertically flipped window.

    Args:
        net (CSPSR | VisOnlySR): Network in eval mode.
        vis (Tensor): LR VIS (1, 3, h, w), RGB in [0, 1].
        nir (Tensor | None): NIR (1, 1, f*h, f*w), ``f`` the network's ``nir_scale``; None for VIS-only networks.
        disp (Tensor | None): Left disparity (1, 1, h, w) for ``cvm='given'``.
        ensemble (bool): Average with the vertical-flip pass (at any NIR size: rows map to rows).

    Returns:
        tuple[Tensor, Tensor | None]: I_SR (1, 3, s*h, s*w) and NIR_SR (None for single-branch networks).
    """
    sr, nir_sr = _forward(net, vis, nir, disp)
    if ensemble:
        flipped = _forward(net, vis.flip(-2), None if nir is None else nir.flip(-2),
                           None if disp is None else disp.flip(-2))
        sr = (sr + flipped[0].flip(-2)) / 2
        if nir_sr is not None:
            nir_sr = (nir_sr + flipped[1].flip(-2)) / 2
    return sr, nir_sr


def to_image(img: Tensor, bits: int) -> np.ndarray:
    """(c, h, w) float in [0, 1] (RGB when c = 3) to an (h, w, c) uint8/uint16 array (BGR when c = 3)."""
    peak = 255.0 if bits == 8 else 65535.0
    arr = (img.float().clamp(0, 1) * peak).round().permute(1, 2, 0).cpu().numpy()  # float: a half-precision output
    if arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    return arr.astype(np.uint8 if bits == 8 else np.uint16)


class TiledResult(NamedTuple):
    """What :func:`super_resolve` returns: quantised images, ready for ``cv2.imwrite``."""

    sr: np.ndarray
    nir_sr: Optional[np.ndarray]


def iter_windows(height: int, width: int, tile: Optional[int], overlap: int,
                 margins: Tuple[int, int]) -> Iterator[Tuple[Box, Box]]:
    """``(tile, window)`` pairs of an image (see :func:`tile_boxes` and :func:`input_window`)."""
    for core in tile_boxes(height, width, tile):
        yield core, input_window(core, height, width, overlap if tile else 0, margins)


def super_resolve(net: InferenceNet, vis: Tensor, nir: Optional[Tensor], disp: Optional[Tensor] = None,
                  tile: Optional[int] = None,
                  overlap: int = 16, ensemble: bool = False, bits: int = 8, with_nir: bool = False,
                  progress=None) -> TiledResult:
    """Super-resolve a whole LR pair, tile by tile when ``tile`` is set.

    The output is assembled directly as 8- or 16-bit integers, so besides the input only one tile's
    activations and the quantised output are held in memory.

    Args:
        net (CSPSR | VisOnlySR): Network in eval mode.
        vis (Tensor): LR VIS (1, 3, h, w), RGB in [0, 1], on the network's device.
        nir (Tensor | None): NIR (1, 1, f*h, f*w), ``f`` the network's ``nir_scale`` (1: the LR size); None for
            VIS-only networks.
        disp (Tensor | None): LR left disparity (1, 1, h, w), for ``cvm='given'``.
        tile (int | None): Tile side in LR pixels; None or 0: the whole image at once.
        overlap (int): Context margin around each tile, LR pixels. Default: 16.
        ensemble (bool): Vertical-flip self-ensemble. Default: False.
        bits (int): 8 or 16 (output depth). Default: 8.
        with_nir (bool): Also assemble NIR_SR. Default: False.
        progress: A tqdm-like object with ``update(n)`` and ``total``, advanced once per tile.

    Returns:
        TiledResult: ``sr`` (s*h, s*w, 3) BGR and ``nir_sr`` (s*h, s*w, 1) or None.
    """
    if bits not in (8, 16):
        raise ValueError(f'bits must be 8 or 16, got {bits}.')
    if overlap < 0:
        raise ValueError(f'overlap must be >= 0, got {overlap}.')
    height, width = vis.shape[-2:]
    scale = net.upscale
    dtype = np.uint8 if bits == 8 else np.uint16
    out = np.zeros((scale * height, scale * width, 3), dtype)
    out_nir = np.zeros((scale * height, scale * width, 1), dtype) if with_nir and net.branches == 'dual' else None
    windows = list(iter_windows(height, width, tile, overlap, disparity_margins(net, disp)))
    if progress is not None:
        progress.reset(total=len(windows))
    f = getattr(net, 'nir_scale', 1)
    with torch.no_grad():
        for core, win in windows:
            crop = (slice(None), slice(None), slice(win.y0, win.y1), slice(win.x0, win.x1))
            nir_crop = (slice(None), slice(None), slice(f * win.y0, f * win.y1), slice(f * win.x0, f * win.x1))
            sr, nir_sr = forward_pair(net, vis[crop], None if nir is None else nir[nir_crop],
                                      None if disp is None else disp[crop], ensemble)
            keep = (slice(scale * (core.y0 - win.y0), scale * (core.y1 - win.y0)),
                    slice(scale * (core.x0 - win.x0), scale * (core.x1 - win.x0)))
            dest = (slice(scale * core.y0, scale * core.y1), slice(scale * core.x0, scale * core.x1))
            out[dest] = to_image(sr[0][(slice(None), ) + keep], bits)
            if out_nir is not None:
                out_nir[dest] = to_image(nir_sr[0][(slice(None), ) + keep], bits)
            if progress is not None:
                progress.update(1)
    return TiledResult(out, out_nir)
