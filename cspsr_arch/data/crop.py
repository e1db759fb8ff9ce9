"""Random training crops of streams at several resolutions, all at one place of the scene."""
import random
from typing import Dict, Optional

import numpy as np


def aligned_random_crop(images: Dict[str, np.ndarray], factors: Dict[str, int], lq_patch_size: int,
                        gt_path: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Crop every stream at the same LR position, each at its own size factor.

    BasicSR's ``paired_random_crop`` crops two resolutions (LR and ``scale`` x LR); a NIR at ``nir_scale``
    x LR is a third one. Here every stream ``name`` of ``factors[name]`` x the LR size is cropped to
    ``factors[name] * lq_patch_size`` pixels at ``factors[name]`` x one LR position, drawn as BasicSR draws
    it (``random.randint`` of the top, then of the left), so with factors 1 and ``scale`` the crops are
    those of ``paired_random_crop`` under the same random state.

    Args:
        images: HWC arrays; the first one of factor 1 sets the LR size.
        factors: Size factor of each stream relative to the LR size (1 for the LR streams).
        lq_patch_size: Patch side in LR pixels.
        gt_path: File named in the message for a too-small image (BasicSR's wording).

    Returns:
        The crops, under the same names (views of the inputs).

    Raises:
        ValueError: A stream that is not its factor times the LR size, or an LR size below the patch.
    """
    base = next((name for name in images if factors[name] == 1), None)
    if base is None:
        raise ValueError(f'No LR stream (factor 1) among {sorted(images)}.')
    h_lq, w_lq = images[base].shape[:2]
    for name, img in images.items():
        factor = factors[name]
        if img.shape[:2] != (factor * h_lq, factor * w_lq):
            raise ValueError(f'Scale mismatches. {name} {tuple(img.shape[:2])} is not {factor}x multiplication of '
                             f'LQ ({h_lq}, {w_lq}).')
    if h_lq < lq_patch_size or w_lq < lq_patch_size:
        raise ValueError(f'LQ ({h_lq}, {w_lq}) is smaller than patch size ({lq_patch_size}, {lq_patch_size}). '
                         f'Please remove {gt_path}.')
    top = random.randint(0, h_lq - lq_patch_size)
    left = random.randint(0, w_lq - lq_patch_size)
    out = {}
    for name, img in images.items():
        f = factors[name]
        out[name] = img[f * top:f * (top + lq_patch_size), f * left:f * (left + lq_patch_size), ...]
    return out
