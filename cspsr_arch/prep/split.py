"""The canonical split layout of ``datasets/README.md``: its one owner (names, paths, files, writers).

A split folder (``datasets/<Name>/<split>``) holds::

    meta_info.txt                                  one "<key>.png (H,W,3)" line per key, sorted
    HR/{VIS,NIR[,DISP_L,DISP_R]}/<key>.png
    LR_bicubic/X<s>/{VIS,NIR[,DISP_L,DISP_R]}/<key>.png

VIS is the left view (8-bit BGR), NIR the right view (8-bit, one channel), DISP_L / DISP_R 16-bit
disparities ``round(d * 256)`` in pixels of their resolution. LR images are BasicSR's MATLAB-style
bicubic ``imresize(HR, 1/s)``; LR disparities the block mean of the HR ones divided by ``s``.
``tools/create_lmdb.py`` mirrors the tree with one ``<stream>.lmdb`` per stream folder
(``<split>_lmdb/HR/VIS.lmdb``, ...) and a copy of ``meta_info.txt``.

Every writer (preparation, LMDB creation, the synthetic and semi-synthetic generators, the tests' toy
splits) and reader (``PairedCrossSpectralDataset``, the benchmark) goes through this module, so the
layout is spelled out once.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np

from cspsr_arch.image_io import encode_disparity
from cspsr_arch.errors import CSPSRInputError

PathLike = Union[str, 'os.PathLike[str]']

HR_DIR = 'HR'
LR_DIR = 'LR_bicubic'
META_INFO = 'meta_info.txt'
STREAM_NAMES = ('VIS', 'NIR', 'DISP_L', 'DISP_R')
REQUIRED_STREAMS = ('VIS', 'NIR')
# Stream name -> (dtype, channels) the layout prescribes.
STREAM_FORMATS = {
    'VIS': (np.dtype(np.uint8), 3),
    'NIR': (np.dtype(np.uint8), 1),
    'DISP_L': (np.dtype(np.uint16), 1),
    'DISP_R': (np.dtype(np.uint16), 1),
}
IMAGE_EXT = '.png'
"""Extension of every image of a split (and of the names in ``meta_info.txt``)."""
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
"""Extensions read as images where a folder is scanned (sources, dataset folders, inference inputs)."""
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
LMDB_EXT = '.lmdb'
SCALE_RE = re.compile(r'^X([1-9][0-9]*)$')
META_SHAPE_RE = re.compile(r'\((\d+),(\d+),(\d+)\)')
"""The ``(H,W,C)`` of a ``meta_info.txt`` line."""
# Keys become file names, LMDB keys and meta_info entries: printable ASCII, no spaces (BasicSR splits
# meta_info lines on ' '), no dots (and keys on '.').
KEY_RE = re.compile(r'^[\x21-\x7e]+$')
DATASET_STREAMS = {
    'gt': ('VIS', False),
    'lq': ('VIS', True),
    'gt_nir': ('NIR', False),
    'lq_nir': ('NIR', True),
    'disp': ('DISP_L', True),
    'disp_r': ('DISP_R', True),
}
"""Stream of ``PairedCrossSpectralDataset`` -> (layout stream, at the LR scale?)."""


def level(scale: Optional[int] = None) -> str:
    """Resolution level folder relative to a split: ``'HR'`` or ``'LR_bicubic/X<s>'``.

    Args:
        scale: None (or 1) for HR; the SR scale for the LR level.
    """
    return HR_DIR if scale in (None, 1) else f'{LR_DIR}/X{int(scale)}'


def stream_dir(split: PathLike, stream: str, scale: Optional[int] = None, lmdb: bool = False) -> Path:
    """Folder of one stream (``<split>/HR/VIS``, ``<split>/LR_bicubic/X4/NIR``; ``...VIS.lmdb`` for LMDBs).

    Args:
        split: Split folder (or its LMDB mirror).
        stream: One of :data:`STREAM_NAMES`.
        scale: None for HR, else the LR scale.
        lmdb: The LMDB of the stream instead of its folder.
    """
    return Path(split) / level(scale) / (stream + (LMDB_EXT if lmdb else ''))


def image_path(split: PathLike, stream: str, key: str, scale: Optional[int] = None) -> Path:
    """Path of one image: ``<split>/<level>/<stream>/<key>.png``.

    Args:
        split: Split folder.
        stream: Stream name.
        key: Image key.
        scale: None for HR, else the LR scale.
    """
    return stream_dir(split, stream, scale) / f'{key}{IMAGE_EXT}'


def dataset_roots(split: PathLike, scale: int, lmdb: bool = False) -> Dict[str, Path]:
    """Roots of every ``PairedCrossSpectralDataset`` stream of a split at one scale (present or not).

    Args:
        split: Split folder (or its LMDB mirror).
        scale: SR scale (selects ``LR_bicubic/X<scale>``).
        lmdb: LMDB paths (``<stream>.lmdb``) instead of folders.

    Returns:
        Dataset stream (``gt``, ``lq``, ...) -> path.
    """
    return {name: stream_dir(split, stream, scale if lr else None, lmdb)
            for name, (stream, lr) in DATASET_STREAMS.items()}


def is_image(name: str) -> bool:
    """Whether a file name has an image extension (:data:`IMAGE_EXTENSIONS`, any case).

    Args:
        name: File name or path.
    """
    return str(name).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: PathLike) -> List[Path]:
    """Image files directly inside ``folder``, sorted by name.

    Args:
        folder: The folder to list.
    """
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image(p.name))


def images_by_stem(files: Sequence[Path], suffix: str = '') -> Dict[str, Path]:
    """Map ``stem without suffix`` -> file (name matching across folders); two files of one stem are an error.

    Args:
        files: Image files.
        suffix: Stem suffix such as ``'_rgb'`` (case-insensitive); empty: every file.
    """
    found: Dict[str, Path] = {}
    for path in files:
        if not path.stem.lower().endswith(suffix):
            continue
        name = path.stem[:len(path.stem) - len(suffix)]
        if name in found:
            raise CSPSRInputError(f'two files for the same image: {found[name]} and {path}; keep one of them.')
        found[name] = path
    return found


def check_key(key: str, path: PathLike) -> str:
    """Return ``key`` if it can be a file name, LMDB key and meta_info entry, else raise.

    Args:
        key: The key made from a source file name.
        path: The source file, for the message.
    """
    if not KEY_RE.match(key) or '.' in key:
        raise CSPSRInputError(f'{path}: the output key {key!r} made from this file name is not usable (keys must be '
                              'printable ASCII without spaces or dots); rename the VIS and NIR files.')
    return key


def meta_line(key: str, height: int, width: int) -> str:
    """The ``meta_info.txt`` line of one key: ``<key>.png (H,W,3)`` (BasicSR's format; 3 = the VIS channels).

    Args:
        key: Image key.
        height: HR height.
        width: HR width.
    """
    return f'{key}{IMAGE_EXT} ({height},{width},3)'


def read_meta_names(meta_info_file: PathLike) -> List[str]:
    """File names listed in a ``meta_info.txt`` (first word of each non-empty line).

    Args:
        meta_info_file: The file; a missing one is an error naming the fix.
    """
    if not os.path.isfile(meta_info_file):
        raise CSPSRInputError(f'meta_info_file {meta_info_file} does not exist; create it (one "<key>.png" per line) '
                              'or remove the meta_info_file option to scan the folders.')
    with open(meta_info_file) as fin:
        return [line.split()[0] for line in fin if line.strip()]


def meta_keys(lines: Sequence[str]) -> List[str]:
    """Sorted keys of ``meta_info.txt`` lines.

    Args:
        lines: Lines as :func:`meta_line` writes them.
    """
    return sorted(line.split(IMAGE_EXT)[0] for line in lines)


def write_meta_info(root: PathLike, lines: Sequence[str]) -> None:
    """Write ``meta_info.txt`` (one line per key, sorted) of a split, atomically.

    Args:
        root: Split folder.
        lines: One line per key (:func:`meta_line`).
    """
    write_atomic(Path(root) / META_INFO, ('\n'.join(sorted(lines)) + '\n').encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then move it into place.

    An interrupted writer so never leaves a partial file under a final name (re-runs trust final names).

    Args:
        path: Final file path.
        data: Content.
    """
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def encode_png(img: np.ndarray, path: PathLike) -> bytes:
    """PNG file content of an image, with the layout's compression.

    Args:
        img: uint8 or uint16 image.
        path: Where it goes, for the message.
    """
    ok, buf = cv2.imencode('.png', img, PNG_PARAMS)
    if not ok:
        raise OSError(f'OpenCV could not encode {path}')
    return buf.tobytes()


def write_image(path: Path, img: np.ndarray) -> None:
    """Write one image of a split as PNG, atomically, creating its folder.

    Args:
        path: Target file (:func:`image_path`).
        img: uint8 image, or uint16 for disparities.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, encode_png(np.ascontiguousarray(img), path))


def to_u8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] image to uint8 (clip, round)."""
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def bicubic_lr(img: np.ndarray, scale: int) -> np.ndarray:
    """``round(255 * imresize(img / 255, 1 / scale))``: BasicSR's MATLAB-style bicubic downscaling.

    Args:
        img: uint8 HR image (H, W) or (H, W, 3).
        scale: Integer scale dividing H and W.
    """
    from basicsr.utils.matlab_functions import imresize
    return to_u8(imresize(img.astype(np.float32) / 255.0, 1.0 / scale))


def lr_disparity(disp: np.ndarray, scale: int) -> np.ndarray:
    """LR disparity of an HR one: block mean over ``scale x scale`` pixels, divided by ``scale``.

    Args:
        disp: float (H, W) disparity in HR pixels (H, W divisible by ``scale``).
        scale: SR scale.
    """
    hh, ww = disp.shape[0] // scale, disp.shape[1] // scale
    return disp.reshape(hh, scale, ww, scale).mean(axis=(1, 3)) / scale


def prepare_split(root: Path, overwrite: bool) -> None:
    """Refuse a non-empty split folder unless ``overwrite``; then remove only what the generators write.

    Args:
        root: split folder.
        overwrite: replace its generated content.
    """
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f'{root} exists and is not empty; pass --overwrite (overwrite=True) to replace it')
        for item in (HR_DIR, LR_DIR):
            if (root / item).is_dir():
                shutil.rmtree(root / item)
        (root / META_INFO).unlink(missing_ok=True)


def write_sample(root: Path, key: str, sample: Dict[str, np.ndarray], scales: Sequence[int]) -> None:
    """Write all HR and LR streams of one scene under a split folder.

    Args:
        root: split folder (``.../train``).
        key: file stem.
        sample: ``vis`` float (H, W, 3) RGB in [0, 1] (left view), ``nir`` float (H, W) in [0, 1] (right view),
            optionally ``disp_l`` and ``disp_r`` float (H, W) in HR pixels (without them, no DISP streams).
        scales: SR scales (each dividing H and W).
    """
    hr = {'VIS': cv2.cvtColor(to_u8(sample['vis']), cv2.COLOR_RGB2BGR), 'NIR': to_u8(sample['nir'])}
    disp = {s: sample[k] for s, k in (('DISP_L', 'disp_l'), ('DISP_R', 'disp_r')) if sample.get(k) is not None}
    outputs = {(stream, None): img for stream, img in hr.items()}
    outputs.update({(stream, None): encode_disparity(d) for stream, d in disp.items()})
    for s in scales:
        for stream, img in hr.items():
            outputs[(stream, s)] = bicubic_lr(img, s)
        for stream, d in disp.items():
            outputs[(stream, s)] = encode_disparity(lr_disparity(d, s))
    for (stream, s), img in outputs.items():
        write_image(image_path(root, stream, key, s), img)
