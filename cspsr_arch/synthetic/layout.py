"""Writing generated stereo scenes in the canonical layout of ``datasets/README.md``.

Shared by ``tools/make_synthetic_rgbnir.py`` (synthetic scenes) and ``tools/make_semisynthetic_rgbnir.py``
(real VIS/NIR pairs with a generated disparity): HR VIS/NIR, 16-bit HR disparities, and per scale the
bicubic LR images (BasicSR's MATLAB-style ``imresize``) and the LR disparities (block mean / scale).
"""
import shutil
from pathlib import Path
from typing import Dict, Sequence

import cv2
import numpy as np

from cspsr_arch.data.image_io import encode_disparity

PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]


def to_u8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] image to uint8 (clip, round)."""
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def prepare_split(root: Path, overwrite: bool) -> None:
    """Refuse a non-empty split folder unless ``overwrite``; then remove only what the generators write.

    Args:
        root: split folder.
        overwrite: replace its generated content.
    """
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f'{root} exists and is not empty; pass --overwrite (overwrite=True) to replace it')
        for item in ('HR', 'LR_bicubic'):
            if (root / item).is_dir():
                shutil.rmtree(root / item)
        (root / 'meta_info.txt').unlink(missing_ok=True)


def write_sample(root: Path, key: str, sample: Dict[str, np.ndarray], scales: Sequence[int]) -> None:
    """Write all HR and LR streams of one scene under a split folder.

    Args:
        root: split folder (``.../train``).
        key: file stem.
        sample: ``vis`` float (H, W, 3) RGB in [0, 1] (left view), ``nir`` float (H, W) in [0, 1] (right view),
            ``disp_l`` and ``disp_r`` float (H, W) in HR pixels.
        scales: SR scales (each dividing H and W).
    """
    from basicsr.utils.matlab_functions import imresize
    hr = {'VIS': cv2.cvtColor(to_u8(sample['vis']), cv2.COLOR_RGB2BGR), 'NIR': to_u8(sample['nir'])}
    disp = {'DISP_L': sample['disp_l'], 'DISP_R': sample['disp_r']}
    outputs = {('HR', s): img for s, img in hr.items()}
    outputs.update({('HR', s): encode_disparity(d) for s, d in disp.items()})
    for s in scales:
        for stream, img in hr.items():
            outputs[(f'LR_bicubic/X{s}', stream)] = to_u8(imresize(img.astype(np.float32) / 255.0, 1.0 / s))
        for stream, d in disp.items():
            hh, ww = d.shape[0] // s, d.shape[1] // s
            outputs[(f'LR_bicubic/X{s}', stream)] = encode_disparity(d.reshape(hh, s, ww, s).mean(axis=(1, 3)) / s)
    for (level, stream), img in outputs.items():
        folder = root / level / stream
        folder.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(folder / f'{key}.png'), img, PNG_PARAMS):
            raise OSError(f'could not write {folder / key}.png')


def write_meta_info(root: Path, lines: Sequence[str]) -> None:
    """Write ``meta_info.txt`` (one ``<key>.png (H,W,3)`` line per scene, sorted) of a split.

    Args:
        root: split folder.
        lines: one line per scene.
    """
    (root / 'meta_info.txt').write_text('\n'.join(sorted(lines)) + '\n')
