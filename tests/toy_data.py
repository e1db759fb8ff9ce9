"""Tiny cross-spectral stereo splits in the canonical layout (datasets/README.md), for tests.

They are written through :mod:`cspsr_arch.prep.split`, like every other split.
"""
from pathlib import Path
from typing import Dict, Iterable, List

import cv2
import numpy as np

from cspsr_arch.prep.split import dataset_roots, meta_line, to_u8, write_meta_info, write_sample


def _smooth_noise(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    small = rng.random((max(h // 4, 2), max(w // 4, 2), c)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img.reshape(h, w, c) * 0.8 + 0.1, 0, 1)


def make_toy_split(split_dir: Path,
                   keys: Iterable[str] = ('a', 'b'),
                   size: int = 48,
                   scales: Iterable[int] = (2, 4),
                   shift: int = 4,
                   seed: int = 0,
                   with_disp: bool = True) -> Dict[str, Dict[str, np.ndarray]]:
    """Write a split whose right NIR view is the left-view NIR shifted by ``shift`` HR pixels.

    ``NIR_r(y, x) = NIR_l(y, x + shift)``, so ``disp_l = disp_r = shift`` (HR pixels) everywhere.

    Args:
        split_dir (Path): Output folder (``.../train``).
        keys (Iterable[str]): Scene keys.
        size (int): HR height; the width is ``size + 8``. Must be divisible by every scale.
        scales (Iterable[int]): LR scales to write.
        shift (int): Constant disparity in HR pixels, divisible by every scale.
        seed (int): Random seed.
        with_disp (bool): Write DISP_L/DISP_R folders.

    Returns:
        dict: key -> {'vis': HR VIS uint8 BGR, 'nir': HR NIR uint8 right view, 'nir_left': NIR in the left view}.
    """
    rng = np.random.default_rng(seed)
    keys: List[str] = list(keys)
    height, width = size, size + 8
    out = {}
    meta = []
    for key in keys:
        vis = to_u8(_smooth_noise(rng, height, width + shift, 3))
        nir_scene = to_u8(0.5 * vis[..., 1:2].astype(np.float32) / 255 + 0.5 * _smooth_noise(rng, height, width + shift, 1))
        vis_left, nir_left = vis[:, :width], nir_scene[:, :width, 0]
        nir_right = nir_scene[:, shift:shift + width, 0]
        out[key] = {'vis': vis_left, 'nir': nir_right, 'nir_left': nir_left}
        sample = {'vis': vis_left[..., ::-1].astype(np.float32) / 255, 'nir': nir_right.astype(np.float32) / 255}
        if with_disp:
            sample['disp_l'] = sample['disp_r'] = np.full((height, width), float(shift))
        write_sample(split_dir, key, sample, tuple(scales))
        meta.append(meta_line(key, height, width))
    write_meta_info(split_dir, meta)
    return out


def dataset_opt(split_dir: Path, scale: int, phase: str = 'val', lmdb: bool = False, **extra) -> dict:
    """PairedCrossSpectralDataset options for a toy split (folder mode, or LMDB under ``<split>_lmdb``)."""
    root = Path(f'{split_dir}_lmdb') if lmdb else Path(split_dir)
    roots = dataset_roots(root, scale, lmdb)
    opt = {
        'name': 'toy',
        'type': 'PairedCrossSpectralDataset',
        'phase': phase,
        'scale': scale,
        'dataroot_gt': str(roots['gt']),
        'dataroot_gt_nir': str(roots['gt_nir']),
        'dataroot_lq': str(roots['lq']),
        'dataroot_lq_nir': str(roots['lq_nir']),
        'dataroot_disp': str(roots['disp']),
        'dataroot_disp_r': str(roots['disp_r']),
        'io_backend': {'type': 'lmdb' if lmdb else 'disk'},
    }
    opt.update(extra)
    return opt
