"""Tiny cross-spectral stereo splits in the canonical layout (datasets/README.md), for tests."""
from pathlib import Path
from typing import Dict, Iterable, List

import cv2
import numpy as np
from basicsr.utils.matlab_functions import imresize

from cspsr_arch.data.image_io import encode_disparity


def _smooth_noise(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    small = rng.random((max(h // 4, 2), max(w // 4, 2), c)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img.reshape(h, w, c) * 0.8 + 0.1, 0, 1)


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img), path


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


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
        vis = _to_u8(_smooth_noise(rng, height, width + shift, 3))
        nir_scene = _to_u8(0.5 * vis[..., 1:2].astype(np.float32) / 255 + 0.5 * _smooth_noise(rng, height, width + shift, 1))
        vis_left, nir_left = vis[:, :width], nir_scene[:, :width, 0]
        nir_right = nir_scene[:, shift:shift + width, 0]
        out[key] = {'vis': vis_left, 'nir': nir_right, 'nir_left': nir_left}
        _save(split_dir / 'HR' / 'VIS' / f'{key}.png', vis_left)
        _save(split_dir / 'HR' / 'NIR' / f'{key}.png', nir_right)
        meta.append(f'{key}.png ({height},{width},3)')
        disp_hr = encode_disparity(np.full((height, width), float(shift)))
        if with_disp:
            _save(split_dir / 'HR' / 'DISP_L' / f'{key}.png', disp_hr)
            _save(split_dir / 'HR' / 'DISP_R' / f'{key}.png', disp_hr)
        for scale in scales:
            lr_dir = split_dir / 'LR_bicubic' / f'X{scale}'
            _save(lr_dir / 'VIS' / f'{key}.png', _to_u8(imresize(vis_left.astype(np.float32) / 255, 1 / scale)))
            _save(lr_dir / 'NIR' / f'{key}.png', _to_u8(imresize(nir_right.astype(np.float32) / 255, 1 / scale)))
            if with_disp:
                disp_lr = encode_disparity(np.full((height // scale, width // scale), shift / scale))
                _save(lr_dir / 'DISP_L' / f'{key}.png', disp_lr)
                _save(lr_dir / 'DISP_R' / f'{key}.png', disp_lr)
    (split_dir / 'meta_info.txt').write_text('\n'.join(meta) + '\n')
    return out


def dataset_opt(split_dir: Path, scale: int, phase: str = 'val', lmdb: bool = False, **extra) -> dict:
    """PairedCrossSpectralDataset options for a toy split (folder mode, or LMDB under ``<split>_lmdb``)."""
    root = Path(f'{split_dir}_lmdb') if lmdb else Path(split_dir)
    ext = '.lmdb' if lmdb else ''
    lr = root / 'LR_bicubic' / f'X{scale}'
    opt = {
        'name': 'toy',
        'type': 'PairedCrossSpectralDataset',
        'phase': phase,
        'scale': scale,
        'dataroot_gt': str(root / 'HR' / f'VIS{ext}'),
        'dataroot_gt_nir': str(root / 'HR' / f'NIR{ext}'),
        'dataroot_lq': str(lr / f'VIS{ext}'),
        'dataroot_lq_nir': str(lr / f'NIR{ext}'),
        'dataroot_disp': str(lr / f'DISP_L{ext}'),
        'dataroot_disp_r': str(lr / f'DISP_R{ext}'),
        'io_backend': {'type': 'lmdb' if lmdb else 'disk'},
    }
    opt.update(extra)
    return opt
