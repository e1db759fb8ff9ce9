"""Augmentation that keeps the stereo (epipolar) geometry of a VIS-left / NIR-right pair valid."""
import random
from typing import Dict

import numpy as np

DISPARITY_KEYS = ('disp', 'disp_r')


def stereo_flip(sample: Dict[str, np.ndarray], hflip: bool, vflip: bool) -> Dict[str, np.ndarray]:
    """Flip every stream of a sample the same way, fixing disparities so the geometry stays true.

    A vertical flip keeps every epipolar line (rows) as it is. A horizontal flip mirrors both views; with
    the VIS image still the "left" input, ``NIR_l(x) = NIR_r(x - d(x))`` then holds for ``d = -flip(disp_l)``,
    so disparity maps are negated. A 90-degree rotation would turn rows into columns and is never applied.

    Args:
        sample (dict[str, np.ndarray]): HWC arrays; keys in :data:`DISPARITY_KEYS` are disparities.
        hflip (bool): Mirror left-right.
        vflip (bool): Mirror top-bottom.

    Returns:
        dict[str, np.ndarray]: New contiguous arrays (copies even without a flip, so callers may keep the
        input, e.g. in a cache).
    """
    out = {}
    for key, img in sample.items():
        if hflip:
            img = img[:, ::-1]
            if key in DISPARITY_KEYS:
                img = -img
        if vflip:
            img = img[::-1]
        out[key] = np.array(img, order='C', copy=True)
    return out


def random_stereo_flip(sample: Dict[str, np.ndarray], use_hflip: bool, use_vflip: bool) -> Dict[str, np.ndarray]:
    """Apply :func:`stereo_flip` with probability 0.5 for each enabled flip.

    Args:
        sample (dict[str, np.ndarray]): HWC arrays of one training sample.
        use_hflip (bool): Allow horizontal flips (disparity negated).
        use_vflip (bool): Allow vertical flips.

    Returns:
        dict[str, np.ndarray]: The augmented sample.
    """
    return stereo_flip(sample, use_hflip and random.random() < 0.5, use_vflip and random.random() < 0.5)
