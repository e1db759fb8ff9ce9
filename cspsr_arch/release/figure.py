"""Crop figures of the model card: one crop of bicubic interpolation, the released models and the ground truth.

The crop is chosen from the ground truth, or from the bicubic image where there is none (a user's own
photograph), never from a model's output: the window of the most detail at the LR resolution (mean
gradient magnitude of the image shrunk by the scale, :func:`crop_box`), which is where strong edges are,
and so where a network's periodic artefacts (a dotted grid from the pixel shuffle, ringing) would show. Panels are
enlarged by pixel repetition (no smoothing hides such patterns), labelled, with the crop's PSNR against
the ground truth when there is one, and two measures of such a pattern at the strongest edges of the whole
image (:func:`grid_pattern`).
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


def edge_mask(reference: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """The strongest edges of an image: the ``fraction`` of pixels with the largest gradient of its luminance
    smoothed by a Gaussian of 2 pixels (structures, not noise).

    Args:
        reference: 8-bit BGR image (the bicubic one, so every panel is measured on the same pixels).
        fraction: Share of the pixels kept.
    """
    grey = cv2.GaussianBlur(cv2.cvtColor(reference, cv2.COLOR_BGR2GRAY).astype(np.float64), (0, 0), 2)
    grad = np.hypot(cv2.Sobel(grey, cv2.CV_64F, 1, 0), cv2.Sobel(grey, cv2.CV_64F, 0, 1))
    return grad > np.quantile(grad, 1 - fraction)


def grid_pattern(img: np.ndarray, mask: np.ndarray, scale: int) -> Tuple[float, float]:
    """How much an image's fine detail at ``mask`` depends on the pixel's place in the ``scale`` x ``scale``
    cell of the LR grid: what a dotted grid or lines from the pixel shuffle change, and natural detail not.

    The detail is the luminance minus its Gaussian blur (1 pixel). Over the ``scale**2`` phases
    ``(y % scale, x % scale)`` of the masked pixels:

    * ``grid``: half the range of its mean, in grey levels. A pattern locked to the LR grid adds the same
      sign at the same phase and raises it; natural detail averages out to a fraction of a grey level.
    * ``modulation``: the largest over the smallest mean of its magnitude. 1 for an image with no relation
      to the grid (the ground truth); bicubic interpolation itself is sharper at some phases than at others.

    Args:
        img: 8-bit BGR image at the output size.
        mask: Boolean (H, W) pixels to measure (:func:`edge_mask` of the bicubic image).
        scale: The LR grid's period in output pixels.

    Returns:
        tuple[float, float]: ``(grid, modulation)``.
    """
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)
    detail = grey - cv2.GaussianBlur(grey, (0, 0), 1)
    means, magnitudes = [], []
    for a in range(scale):
        for b in range(scale):
            here = detail[a::scale, b::scale][mask[a::scale, b::scale]]
            if here.size == 0:
                raise CSPSRInputError(f'no measured pixel at the phase ({a}, {b}) of the x{scale} grid: the mask is empty.')
            means.append(here.mean())
            magnitudes.append(np.abs(here).mean())
    return float((max(means) - min(means)) / 2), float(max(magnitudes) / max(min(magnitudes), 1e-12))


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
        ``grid``: :func:`grid_pattern` of each whole image at the strongest edges of the first one (printed
        under its panel).
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
    mask = edge_mask(images[next(iter(images))])
    grids = {label: grid_pattern(img, mask, scale) for label, img in shown.items()}
    panels = [_panel(img[window], zoom, label, ([f'crop {psnrs[label]:.2f} dB' if label in psnrs else '']
                                                if psnrs else []) + [f'grid {grids[label][0]:.2f}, phase mod. '
                                                                     f'{grids[label][1]:.2f}'])
              for label, img in shown.items()]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), np.concatenate(panels, axis=1), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise CSPSRInputError(f'Cannot write {out_path}.')
    return {'box': [int(top), int(left), size], 'psnr': psnrs, 'grid': grids}
