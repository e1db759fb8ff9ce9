"""Spectral model of the synthetic data: the NIR image a scene would give (used by the generator and
by tools/eval_disparity.py for the NIR-like right view of the Middlebury pair)."""
from typing import Optional

import cv2
import numpy as np

GAMMA = 2.2


def nir_response(rgb: np.ndarray, t_nir: Optional[np.ndarray] = None) -> np.ndarray:
    """NIR image (display values in [0, 1]) of a clean RGB scene; see the module docstring.

    Args:
        rgb: clean scene (H, W, 3), display-referred [0, 1].
        t_nir: optional NIR haze transmission (H, W).

    Returns:
        float32 (H, W) NIR image.
    """
    r, g, b = (rgb[..., i] for i in range(3))
    lin = rgb ** GAMMA
    base = 0.6 * lin[..., 0] + 0.3 * lin[..., 1] + 0.1 * lin[..., 2]
    mrb, mrg = np.maximum(r, b), np.maximum(r, g)
    veg = cv2.GaussianBlur(np.clip(4 * (g - mrb) / (g + mrb + 0.02), 0, 1), (0, 0), 1.0)
    blue = cv2.GaussianBlur(np.clip(3 * (b - mrg) / (b + mrg + 0.02), 0, 1), (0, 0), 1.0)
    sat = (rgb.max(-1) - rgb.min(-1)) / (rgb.max(-1) + 1e-3)
    nir = base * (1 + 2.5 * veg) * (1 - 0.75 * blue) + 0.12 * sat * (1 - blue) * (1 - veg)
    ycc = cv2.cvtColor((rgb * 255).astype(np.uint8), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    skin = ((ycc[..., 0] > 50) & (ycc[..., 1] > 135) & (ycc[..., 1] < 175) & (ycc[..., 2] > 80) & (ycc[..., 2] < 130))
    skin = cv2.GaussianBlur(skin.astype(np.float32), (0, 0), 2.0)
    nir = nir * (1 - skin) + skin * 1.15 * cv2.GaussianBlur(nir, (0, 0), 2.5)
    y = 0.3 * lin[..., 0] + 0.59 * lin[..., 1] + 0.11 * lin[..., 2]
    nir = nir + 0.25 * (y - cv2.GaussianBlur(y, (0, 0), 2.0))
    if t_nir is not None:
        nir = nir * t_nir + 0.5 * np.percentile(nir, 99) * (1 - t_nir)
    nir = np.clip(nir * 0.9 / max(float(np.percentile(nir, 99.5)), 1e-3), 0, 1)
    return (nir ** (1 / GAMMA)).astype(np.float32)
