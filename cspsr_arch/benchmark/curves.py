"""Learning curves: the validation PSNR that BasicSR logs during training, and one picture of them.

BasicSR's validation writes ``Validation <name>`` and ``# psnr: <value>`` to the training log right after the
progress line of the same iteration (the benchmark's ``val_every`` is a multiple of its ``print_freq``), so
the curve is read from the log: the iteration of the last progress line before each validation.
"""
import re
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from cspsr_arch.benchmark.training import ITER_RE

PSNR_RE = re.compile(r'# psnr: ([-\d.eE+]+)')
COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
           (194, 119, 227), (127, 127, 127)]
"""Line colours (BGR), one per model."""


def read_curve(log_file: Path) -> List[List[float]]:
    """``[[iteration, psnr], ...]`` of one training log (the last value per iteration, after a resume)."""
    points: Dict[int, float] = {}
    current = None
    for line in log_file.read_text(errors='replace').splitlines():
        match = ITER_RE.search(line)
        if match:
            current = int(match.group(1).replace(',', ''))
            continue
        match = PSNR_RE.search(line)
        if match and current is not None:
            points[current] = float(match.group(1))
    return [[it, points[it]] for it in sorted(points)]


def _panel(curves: Dict[str, List[List[float]]], title: str, colours: Dict[str, Tuple[int, int, int]],
           size: Tuple[int, int] = (420, 560)) -> np.ndarray:
    h, w = size
    left, right, top, bottom = 60, 10, 30, 40
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.putText(img, title, (left, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    points = [p for c in curves.values() for p in c]
    if not points:
        cv2.putText(img, 'no validation scores', (left, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        return img
    x_max = max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    pad = max(0.05, 0.05 * (y_hi - y_lo))
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def xy(it: float, v: float) -> Tuple[int, int]:
        return (int(left + (w - left - right) * it / max(x_max, 1)), int(h - bottom - (h - top - bottom) * (v - y_lo) /
                                                                         (y_hi - y_lo)))

    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    for frac in np.linspace(0, 1, 5):
        v = y_lo + frac * (y_hi - y_lo)
        _, y = xy(0, v)
        cv2.putText(img, f'{v:.2f}', (4, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        it = frac * x_max
        x, _ = xy(it, y_lo)
        cv2.putText(img, f'{it:.0f}', (x - 12, h - bottom + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(img, 'iteration', (w // 2 - 30, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (row, curve) in enumerate(curves.items()):
        pts = np.array([xy(it, v) for it, v in curve], np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, colours[row], 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, tuple(int(c) for c in p), 3, colours[row], -1, cv2.LINE_AA)
        cv2.putText(img, row, (left + 8, top + 18 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colours[row], 1,
                    cv2.LINE_AA)
    return img


def plot(curves: Dict[str, Dict[str, List[List[float]]]], out_path: Path, title: str = 'validation PSNR (dB)') -> None:
    """One PNG: a panel per protocol, a line per model (validation PSNR against iteration).

    Args:
        curves: Protocol -> model -> ``[[iteration, psnr], ...]``.
        out_path: PNG to write.
        title: Title prefix of each panel.
    """
    rows: Sequence[str] = list(dict.fromkeys(row for by_row in curves.values() for row in by_row))
    colours = {row: COLOURS[i % len(COLOURS)] for i, row in enumerate(rows)}
    panels = [_panel(by_row, f'{title}, {protocol} protocol', colours) for protocol, by_row in curves.items()]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_path), np.concatenate(panels, axis=1))
