"""Conversion of one VIS/NIR source pair for ``tools/prepare_data.py`` (see its docstring for the rules).

Everything a worker process does: decode and check the pair, crop it to a multiple of the scales, cut
sub-images, compute the bicubic LR images, write every output atomically, and keep a record of what
was written so that a later run can skip the pair.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from cspsr_arch.data.image_io import decode
from cspsr_arch.data.layouts import SourcePair, format_sparse_disparity, parse_keypoints
from cspsr_arch.errors import CSPSRInputError

PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
SPARSE_DIR = 'DISP_SPARSE'
RECORDS = '.prepare'
Box = Tuple[int, int, int, int]  # y, x, height, width


def tile_boxes(height: int, width: int, crop_size: Optional[int], step: Optional[int]) -> List[Box]:
    """Sub-image boxes of an image, like BasicSR's ``extract_subimages`` (last tile flush with the border).

    Args:
        height: Image height.
        width: Image width.
        crop_size: Tile side; None: one box, the whole image.
        step: Distance between tiles.
    """
    if not crop_size:
        return [(0, 0, height, width)]

    def starts(size: int) -> List[int]:
        if size <= crop_size:
            return [0]
        found = list(range(0, size - crop_size + 1, step))
        if found[-1] + crop_size < size:
            found.append(size - crop_size)
        return found

    return [(y, x, min(crop_size, height), min(crop_size, width)) for y in starts(height) for x in starts(width)]


def to_u8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] to uint8 (clip, round)."""
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def bicubic_lr(img: np.ndarray, scale: int) -> np.ndarray:
    """``round(255 * imresize(img / 255, 1 / scale))``: BasicSR's MATLAB-style bicubic downscaling.

    Args:
        img: uint8 HR image (H, W) or (H, W, 3).
        scale: Integer scale dividing H and W.
    """
    from basicsr.utils.matlab_functions import imresize
    return to_u8(imresize(img.astype(np.float32) / 255.0, 1.0 / scale))


def read_pair(pair: SourcePair) -> Tuple[np.ndarray, np.ndarray]:
    """Decode a pair: uint8 VIS (H, W, 3) BGR and uint8 NIR (H, W); checks channels and sizes.

    Args:
        pair: The source pair.
    """
    images = []
    for path, kind in ((pair.vis, 'vis'), (pair.nir, 'nir')):
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise CSPSRInputError(f'cannot read {path}: {error}; fix its permissions or replace it.') from None
        images.append(to_u8(decode(data, path, kind)))
    vis, nir = images[0], images[1][:, :, 0]
    if vis.shape[:2] != nir.shape:
        raise CSPSRInputError(f'size mismatch: VIS {pair.vis} is {vis.shape[1]}x{vis.shape[0]} (WxH) but NIR '
                              f'{pair.nir} is {nir.shape[1]}x{nir.shape[0]}; a pair must have one size (register or '
                              'crop both images the same way first).')
    return vis, nir


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then move it into place.

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


def _png(img: np.ndarray, path: Path) -> bytes:
    """PNG file content of an image.

    Args:
        img: uint8 image.
        path: Where it goes, for the message.
    """
    ok, buf = cv2.imencode('.png', img, PNG_PARAMS)
    if not ok:
        raise OSError(f'OpenCV could not encode {path}')
    return buf.tobytes()


def _source_stat(pair: SourcePair) -> list:
    """Paths, sizes and modification times of a pair's source files (what a record remembers).

    Args:
        pair: The source pair.
    """
    paths = [p for p in (pair.vis, pair.nir, pair.keypoints) if p]
    return [[str(Path(p).resolve()), os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in paths]


def output_files(split: Path, key: str, scales: Sequence[int], sparse: bool) -> List[Path]:
    """Every file the tool writes for one output key.

    Args:
        split: The split folder.
        key: Output key.
        scales: Scales.
        sparse: Whether a ``DISP_SPARSE`` file belongs to it.
    """
    levels = ['HR'] + [f'LR_bicubic/X{s}' for s in scales]
    files = [split / level / stream / f'{key}.png' for level in levels for stream in ('VIS', 'NIR')]
    return files + ([split / SPARSE_DIR / f'{key}.txt'] if sparse else [])


def record_path(split: Path, key: str) -> Path:
    """Where the record of the source pair ``key`` lives.

    Args:
        split: The split folder.
        key: Key of the source pair.
    """
    return split / RECORDS / 'items' / f'{key}.json'


def load_record(split: Path, pair: SourcePair, scales: Sequence[int]) -> Optional[dict]:
    """The record of a finished pair, or None when the pair must be (re)done.

    Args:
        split: The split folder.
        pair: The source pair.
        scales: Scales.
    """
    try:
        record = json.loads(record_path(split, pair.key).read_text())
    except (OSError, ValueError):
        return None
    if record.get('source') != _source_stat(pair):
        return None
    if not all(p.is_file() for key, _, _ in record['outputs']
               for p in output_files(split, key, scales, pair.keypoints is not None)):
        return None
    return record


def process_pair(job: Tuple[str, SourcePair, Tuple[int, ...], Optional[int], Optional[int]]) -> dict:
    """Write every output of one pair (or find them done) and return its record.

    Args:
        job: (split folder, pair, scales, crop size, step).

    Returns:
        The record: ``source``, ``outputs`` ([key, H, W] per output key), ``size`` (source H, W),
        ``keypoints`` ([kept, total]) and ``skipped`` (True when nothing was written).
    """
    split_name, pair, scales, crop_size, step = job
    split = Path(split_name)
    record = load_record(split, pair, scales)
    if record is not None:
        return {**record, 'skipped': True}
    record_path(split, pair.key).unlink(missing_ok=True)  # outdated: never trusted again, even if interrupted
    source = _source_stat(pair)
    vis, nir = read_pair(pair)
    height, width = vis.shape[:2]
    lcm = math.lcm(*scales)
    crop_h, crop_w = height - height % lcm, width - width % lcm
    if not crop_h or not crop_w:
        raise CSPSRInputError(f'{pair.vis} is {width}x{height} (WxH), smaller than the scale lcm {lcm}; remove it.')
    vis, nir = vis[:crop_h, :crop_w], nir[:crop_h, :crop_w]
    points, kept = None, 0
    if pair.keypoints:
        points = parse_keypoints(pair.keypoints, width, height)
        inside = (points[:, 0] >= 0) & (points[:, 0] < crop_w) & (points[:, 1] >= 0) & (points[:, 1] < crop_h)
        kept = int(inside.sum())
    lr = {s: (bicubic_lr(vis, s), bicubic_lr(nir, s)) for s in scales}
    boxes = tile_boxes(crop_h, crop_w, crop_size, step)
    outputs = []
    for index, (y, x, h, w) in enumerate(boxes, 1):
        key = pair.key if not crop_size else f'{pair.key}_s{index:03d}'
        images = {('HR', 'VIS'): vis[y:y + h, x:x + w], ('HR', 'NIR'): nir[y:y + h, x:x + w]}
        for s, (lr_vis, lr_nir) in lr.items():
            window = (slice(y // s, (y + h) // s), slice(x // s, (x + w) // s))
            images[(f'LR_bicubic/X{s}', 'VIS')] = lr_vis[window]
            images[(f'LR_bicubic/X{s}', 'NIR')] = lr_nir[window]
        for (level, stream), img in images.items():
            path = split / level / stream / f'{key}.png'
            write_atomic(path, _png(np.ascontiguousarray(img), path))
        if points is not None:
            inside = ((points[:, 0] >= x) & (points[:, 0] < x + w) & (points[:, 1] >= y) & (points[:, 1] < y + h))
            tile_points = points[inside] - np.array([x, y, 0, 0])
            write_atomic(split / SPARSE_DIR / f'{key}.txt', format_sparse_disparity(tile_points).encode())
        outputs.append([key, h, w])
    record = {'source': source, 'outputs': outputs, 'size': [height, width],
              'keypoints': [kept, 0 if points is None else len(points)]}
    write_atomic(record_path(split, pair.key), json.dumps(record).encode())
    return {**record, 'skipped': False}
