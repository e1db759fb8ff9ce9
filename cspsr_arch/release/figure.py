"""Crop figures of the model card: one crop of bicubic interpolation, the released models and the ground truth.

The crop is chosen from the ground truth, or from the bicubic image where there is none (a user's own
photograph), never from a model's output: the window of the most detail at the LR resolution (mean
gradient magnitude of the image shrunk by the scale, :func:`crop_box`), which is where strong edges are,
and so where a network's periodic artefacts (a dotted grid from the pixel shuffle, ringing) would show. Panels are
enlarged by pixel repetition (no smoothing hides such patterns), labelled, with the crop's PSNR against
the ground truth when there is one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

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


def _panel(crop: np.ndarray, zoom: int, title: str, subtitle: str = '') -> np.ndarray:
    big = cv2.resize(crop, (crop.shape[1] * zoom, crop.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
    strip = np.full((40, big.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, title[:30], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    if subtitle:
        cv2.putText(strip, subtitle[:30], (4, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
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
        dict: ``box`` [top, left, size] and ``psnr`` per label (empty without ground truth).
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
    panels, psnrs = [], {}
    for label, img in images.items():
        crop = img[window]
        if gt is not None:
            psnrs[label] = float(calculate_psnr(crop, gt[window], 0))
        panels.append(_panel(crop, zoom, label, f'{psnrs[label]:.2f} dB' if label in psnrs else ''))
    if gt is not None:
        panels.append(_panel(gt[window], zoom, 'ground truth'))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), np.concatenate(panels, axis=1), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise CSPSRInputError(f'Cannot write {out_path}.')
    return {'box': [int(top), int(left), size], 'psnr': psnrs}
