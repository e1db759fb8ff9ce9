"""Crop figures of the model card: one crop of bicubic interpolation, the released models and the ground truth.

The crop is chosen from the ground truth, or from the bicubic image where there is none (a user's own
photograph), never from a model's output: the window of the most detail at the LR resolution (mean
gradient magnitude of the image shrunk by the scale, :func:`crop_box`), which is where strong edges are,
and so where a network's periodic artefacts (a dotted grid from the pixel shuffle, ringing) would show. Panels are
enlarged by pixel repetition (no smoothing hides such patterns), labelled, with the crop's PSNR against
the ground truth when there is one, and a measure of such a grid over the whole image
(:func:`lattice_peak_ratio`: about 1 without one).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from cspsr_arch.errors import CSPSRInputError


def read_bgr(path: Path) -> np.ndarray:
    """An 8-bit colour image (16-bit ones are scaled down), with a clear error for a missing file."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise CSPSRInputError(f'{path}: not a readable image.')
    return (img / 257).round().astype(np.uint8) if img.dtype == np.uint16 else img


def bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """BasicSR's MATLAB-style bicubic upsampling of an 8-bit BGR image (as the benchmark's bicubic row)."""
    from basicsr.utils.matlab_functions import imresize
    up = imresize(lr.astype(np.float64) / 255, scale)
    return np.clip(np.round(up * 255), 0, 255).astype(np.uint8)


def crop_box(reference: np.ndarray, size: int, scale: int) -> Tuple[int, int]:
    """(top, left) of the ``size`` window of ``reference`` with the most detail an LR input can hold.

    The detail is measured on ``reference`` shrunk by ``scale`` (area): strong edges and large structures
    count, fine texture that the LR image cannot resolve does not (that window would show every method
    failing alike, and no edge to judge artefacts by).

    Args:
        reference: The ground truth, or the bicubic image (8-bit BGR, output size).
        size: Window side in output pixels (a multiple of ``scale``).
        scale: Scale factor.
    """
    from cspsr_arch.benchmark.report import select_crop
    small = cv2.resize(reference, (reference.shape[1] // scale, reference.shape[0] // scale),
                       interpolation=cv2.INTER_AREA)
    _, top, left = select_crop({'image': small}, size // scale)
    return top * scale, left * scale


def lattice_peak_ratio(img: np.ndarray, period: int, tile: int = 64) -> float:
    """How strongly an image holds a pattern that repeats every ``period`` pixels (a pixel-shuffle grid).

    A pattern periodic with ``period`` in both directions has all its power at the lattice frequencies
    ``(a / period, b / period)`` cycles per pixel; natural image content and noise spread theirs. The
    luminance is cut into ``tile`` x ``tile`` tiles (a multiple of ``period``), each Hann-windowed, and
    their power spectra averaged (Welch); at every lattice frequency but zero the power is divided by
    the median power of the bins 2 to 4 bins away from it. The largest of these ratios is about 1 for
    photographs, interpolation and noise, and grows with a grid or dot pattern of that period.

    Args:
        img: 8-bit BGR (or grey) image.
        period: The pattern's period in pixels (the scale factor).
        tile: Tile side (rounded down to a multiple of ``period``).

    Returns:
        float: The largest peak-to-neighbourhood power ratio.
    """
    grey = (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img).astype(np.float64)
    tile = tile // period * period
    rows, cols = grey.shape[0] // tile, grey.shape[1] // tile
    if tile < 4 * period or rows == 0 or cols == 0:
        raise CSPSRInputError(f'an image of {grey.shape[1]}x{grey.shape[0]} is too small for tiles of {tile} with a '
                              f'period of {period}.')
    window = np.outer(np.hanning(tile), np.hanning(tile))
    tiles = grey[:rows * tile, :cols * tile].reshape(rows, tile, cols, tile).transpose(0, 2, 1, 3)
    tiles = (tiles - tiles.mean(axis=(2, 3), keepdims=True)) * window
    power = (np.abs(np.fft.fft2(tiles)) ** 2).mean(axis=(0, 1))
    step, ratios = tile // period, []
    offsets = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if max(abs(dy), abs(dx)) >= 2]
    for a in range(period):
        for b in range(period):
            if a or b:
                fy, fx = a * step, b * step
                ring = [power[(fy + dy) % tile, (fx + dx) % tile] for dy, dx in offsets]
                ratios.append(power[fy, fx] / max(float(np.median(ring)), 1e-12))
    return float(max(ratios))


def _panel(crop: np.ndarray, zoom: int, title: str, lines: Sequence[str] = ()) -> np.ndarray:
    big = cv2.resize(crop, (crop.shape[1] * zoom, crop.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
    strip = np.full((22 + 18 * len(lines), big.shape[1], 3), 255, np.uint8)
    for i, text in enumerate((title, *lines)):
        cv2.putText(strip, text[:34], (4, 16 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return cv2.copyMakeBorder(np.concatenate([big, strip], axis=0), 2, 2, 2, 2, cv2.BORDER_CONSTANT,
                              value=(255, 255, 255))


def crop_figure(images: Dict[str, np.ndarray], out_path: Path, scale: int, size: int = 80, zoom: int = 3,
                gt: Optional[np.ndarray] = None, box: Optional[Tuple[int, int]] = None) -> dict:
    """Write the panels of one crop side by side (``images`` in order, then the ground truth).

    Args:
        images: Label -> 8-bit BGR image at the output size (``bicubic`` first, by convention).
        out_path: PNG to write.
        scale: Scale factor (the crop is chosen at the LR resolution, see :func:`crop_box`).
        size: Crop side in output pixels.
        zoom: Enlargement of each panel (pixel repetition).
        gt: Ground truth at the output size, or None (a photograph without one).
        box: (top, left) of the crop; None: chosen from ``gt``, else from the first image.

    Returns:
        dict: ``box`` [top, left, size], ``psnr`` of the crop per label (empty without ground truth) and
        ``grid``, :func:`lattice_peak_ratio` of each whole image (printed under its panel).
    """
    from basicsr.metrics import calculate_psnr
    shapes = {label: img.shape for label, img in images.items()}
    if gt is not None:
        shapes['ground truth'] = gt.shape
    if len(set(shapes.values())) != 1:
        raise CSPSRInputError(f'the images of a crop figure must have one size, got {shapes}.')
    if box is None:
        top, left = crop_box(gt if gt is not None else next(iter(images.values())), size, scale)
    else:
        top, left = box
    window = (slice(top, top + size), slice(left, left + size))
    shown = {**images, **({'ground truth': gt} if gt is not None else {})}
    psnrs = {label: float(calculate_psnr(img[window], gt[window], 0)) for label, img in images.items()
             if gt is not None}
    grids = {label: lattice_peak_ratio(img, scale) for label, img in shown.items()}
    panels = [_panel(img[window], zoom, label, ([f'crop {psnrs[label]:.2f} dB' if label in psnrs else '']
                                                if psnrs else []) + [f'x{scale}-grid peak {grids[label]:.1f}'])
              for label, img in shown.items()]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), np.concatenate(panels, axis=1), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise CSPSRInputError(f'Cannot write {out_path}.')
    return {'box': [int(top), int(left), size], 'psnr': psnrs, 'grid': grids}
