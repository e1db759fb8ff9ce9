"""Conversion of a prepared cross-spectral split folder to LMDBs that mirror its tree (``tools/create_lmdb.py``).

The input is one split in the canonical layout of ``datasets/README.md``::

    <split>/meta_info.txt
    <split>/HR/{VIS,NIR[,DISP_L,DISP_R]}/<key>.png
    <split>/LR_bicubic/X<s>/{VIS,NIR[,DISP_L,DISP_R]}/<key>.png

The output gets one LMDB per stream folder, keyed by ``<key>`` and written with BasicSR's
``make_lmdb_from_imgs`` (images re-encoded as PNG, 16-bit disparity kept 16-bit), plus a copy of the
split's ``meta_info.txt``::

    <output>/meta_info.txt
    <output>/HR/VIS.lmdb, <output>/HR/NIR.lmdb, ...
    <output>/LR_bicubic/X4/VIS.lmdb, ...

Usage::

    python tools/create_lmdb.py --input datasets/Synthetic/train \
        [--output datasets/Synthetic/train_lmdb] [--compress-level 1] [--n-thread N]

Everything is checked before anything is written; a bad split or an existing output stops the tool
with a message naming the offending path and exit status 2. The LMDBs are written into a temporary
folder beside the output and moved into place only once all of them are complete.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from tqdm import tqdm

from cspsr_arch.prep.split import (HR_DIR, IMAGE_EXT, KEY_RE, LMDB_EXT, LR_DIR, META_INFO, META_SHAPE_RE, PNG_SIGNATURE,
                                   REQUIRED_STREAMS, SCALE_RE, STREAM_FORMATS, STREAM_NAMES, PathLike, image_path, level)

# (height, width, channels, dtype) of one image.
Shape = tuple[int, int, int, np.dtype]


class LmdbInputError(ValueError):
    """Bad input (split folder, output path or option); the message names it and says how to fix it."""


def _list_keys(folder: Path) -> list[str]:
    """List the keys (file stems) of one stream folder, rejecting anything but ``<key>.png`` files.

    Args:
        folder: The stream folder, e.g. ``<split>/HR/VIS``.
    """
    keys = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            raise LmdbInputError(f'unexpected folder {entry}: a stream folder holds only <key>.png files; '
                                 'move it out of the split.')
        if not entry.name.endswith(IMAGE_EXT):
            raise LmdbInputError(f'{entry} is not a PNG file (name must end with ".png"); every stream holds '
                                 'only <key>.png images: convert it to PNG or move it out of the split.')
        key = entry.name[:-len(IMAGE_EXT)]
        if not KEY_RE.match(key) or '.' in key:
            raise LmdbInputError(f'bad file name {entry}: keys must be non-empty printable ASCII without spaces '
                                 'or dots (LMDB keys and BasicSR meta_info parsing need this); rename the file '
                                 'in every stream and in meta_info.txt.')
        keys.append(key)
    if not keys:
        raise LmdbInputError(f'stream folder {folder} holds no PNG images; fill it or remove it.')
    return keys


def _stream_dirs(level_dir: Path, label: str) -> dict[str, Path]:
    """Return the stream folders (``VIS``, ``NIR``, ...) of one resolution level, checking their names.

    Args:
        level_dir: ``<split>/HR`` or ``<split>/LR_bicubic/X<s>``.
        label: Path of ``level_dir`` relative to the split, e.g. ``'HR'`` or ``'LR_bicubic/X4'``.
    """
    found = {}
    for entry in sorted(level_dir.iterdir()):
        if not entry.is_dir() or entry.name not in STREAM_NAMES:
            raise LmdbInputError(f'unexpected entry {entry}: {label}/ may only hold the stream folders '
                                 f'{", ".join(STREAM_NAMES)}; rename or move it out of the split.')
        found[entry.name] = entry
    missing = [name for name in REQUIRED_STREAMS if name not in found]
    if missing:
        raise LmdbInputError(f'required stream folder {level_dir / missing[0]} is missing; every resolution '
                             f'level needs {" and ".join(REQUIRED_STREAMS)} (see datasets/README.md): '
                             'prepare the split again.')
    return {name: found[name] for name in STREAM_NAMES if name in found}


def discover_streams(split_dir: PathLike) -> dict[str, list[str]]:
    """Find the stream folders of a split and the keys each one holds.

    Args:
        split_dir: A split folder in the canonical layout, e.g. ``datasets/Synthetic/train``.

    Returns:
        Stream path relative to the split (``'HR/VIS'``, ``'LR_bicubic/X4/NIR'``, ...) -> sorted keys.
        HR streams come first, then the LR scales in increasing order; within a level the order is
        VIS, NIR, DISP_L, DISP_R.

    Raises:
        LmdbInputError: The folder is missing, a required stream is missing, or a folder holds
            something other than the layout allows.
    """
    split = Path(split_dir)
    if not split.is_dir():
        raise LmdbInputError(f'input folder {split} does not exist (or is not a folder); pass a prepared '
                             'split folder such as datasets/Synthetic/train to --input.')
    hr_dir = split / HR_DIR
    if not hr_dir.is_dir():
        raise LmdbInputError(f'required folder {hr_dir} is missing; {split} is not a split in the layout of '
                             'datasets/README.md (HR/VIS, HR/NIR, LR_bicubic/X<s>/{VIS,NIR}).')
    streams = {f'{HR_DIR}/{name}': _list_keys(path) for name, path in _stream_dirs(hr_dir, HR_DIR).items()}

    lr_root = split / LR_DIR
    if not lr_root.is_dir():
        raise LmdbInputError(f'required folder {lr_root} is missing; a split needs at least one '
                             'LR_bicubic/X<s> folder with VIS and NIR (see datasets/README.md).')
    scales = []
    for entry in sorted(lr_root.iterdir()):
        match = SCALE_RE.match(entry.name)
        if not entry.is_dir() or not match or int(match.group(1)) < 2:
            raise LmdbInputError(f'unexpected entry {entry}: LR_bicubic/ may only hold scale folders X<s> '
                                 'with s >= 2 (e.g. X2, X4); rename or move it out of the split.')
        scales.append(int(match.group(1)))
    if not scales:
        raise LmdbInputError(f'{lr_root} holds no scale folder; add at least one LR_bicubic/X<s> with VIS '
                             'and NIR (see datasets/README.md).')
    for scale in sorted(scales):
        label = level(scale)
        for name, path in _stream_dirs(lr_root / f'X{scale}', label).items():
            streams[f'{label}/{name}'] = _list_keys(path)
    return streams


def _check_keys(split: Path, streams: dict[str, list[str]]) -> None:
    """Check that every stream holds exactly the keys of ``HR/VIS``.

    Args:
        split: The split folder.
        streams: Output of :func:`discover_streams`.
    """
    reference = set(streams['HR/VIS'])
    for rel, keys in streams.items():
        missing = sorted(reference - set(keys))
        if missing:
            more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
            raise LmdbInputError(f'missing file {split / rel / (missing[0] + ".png")}{more}: HR/VIS has key '
                                 f'{missing[0]!r}, and every stream folder present must hold the same keys; '
                                 f'add the file or remove {missing[0]}.png from all streams and meta_info.txt.')
        extra = sorted(set(keys) - reference)
        if extra:
            more = f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''
            raise LmdbInputError(f'extra file {split / rel / (extra[0] + ".png")}{more}: key {extra[0]!r} is '
                                 f'not in {split / "HR" / "VIS"}; add the HR/VIS image or remove the file.')


def _check_meta_info(split: Path, hr_vis: dict[str, Shape]) -> None:
    """Check that the split's ``meta_info.txt`` lists exactly the keys (and shapes) of ``HR/VIS``.

    Args:
        split: The split folder.
        hr_vis: Key -> shape of the ``HR/VIS`` images.
    """
    meta_path = split / META_INFO
    if not meta_path.is_file():
        raise LmdbInputError(f'{meta_path} is missing; a split lists its scenes there, one line per key: '
                             '"<key>.png (H,W,3)" (see datasets/README.md).')
    listed: list[str] = []
    for number, line in enumerate(meta_path.read_text(encoding='utf-8').splitlines(), 1):
        if not line.strip():
            continue
        name, _, rest = line.strip().partition(' ')
        where = f'{meta_path}, line {number}'
        if not name.endswith('.png') or name[:-4] not in hr_vis:
            raise LmdbInputError(f'{where} names {name!r}, which is not an image of {split / "HR" / "VIS"}; '
                                 'fix the line or add the image.')
        key = name[:-4]
        if key in listed:
            raise LmdbInputError(f'{where} lists {name!r} a second time; remove the duplicate line.')
        listed.append(key)
        shape = META_SHAPE_RE.search(rest.replace(' ', ''))
        height, width, channels, _ = hr_vis[key]
        if shape and tuple(int(v) for v in shape.groups()) != (height, width, channels):
            raise LmdbInputError(f'{where} gives shape {shape.group(0)} for {name} but '
                                 f'{split / "HR" / "VIS" / name} is ({height},{width},{channels}); '
                                 'fix meta_info.txt.')
    unlisted = sorted(set(hr_vis) - set(listed))
    if unlisted:
        raise LmdbInputError(f'{meta_path} does not list {unlisted[0]}.png ({len(unlisted)} key(s) of HR/VIS '
                             'unlisted); add a line "<key>.png (H,W,3)" for each.')


def _read_shape(path: Path) -> Shape:
    """Decode one PNG and return its shape, raising a clear error for a bad file.

    Args:
        path: The image file.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LmdbInputError(f'cannot read {path}: {error}; fix its permissions or replace it.') from None
    if not data.startswith(PNG_SIGNATURE):
        raise LmdbInputError(f'{path} is not a PNG file (wrong signature); re-save it as PNG.')
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        raise LmdbInputError(f'{path} is corrupt or truncated (OpenCV cannot decode it); regenerate it.')
    channels = 1 if image.ndim == 2 else image.shape[2]
    return image.shape[0], image.shape[1], channels, image.dtype


def validate_split(split_dir: PathLike, streams: Optional[dict[str, list[str]]] = None, n_thread: int = 1,
                   progress: bool = True) -> dict[str, dict[str, Shape]]:
    """Check a split completely: layout, keys, ``meta_info.txt``, image files, formats and sizes.

    Args:
        split_dir: The split folder.
        streams: Output of :func:`discover_streams` (computed when None).
        n_thread: Threads used to decode the images.
        progress: Whether to show a progress bar while decoding.

    Returns:
        Stream path -> key -> (height, width, channels, dtype).

    Raises:
        LmdbInputError: The first problem found, naming the offending file.
    """
    split = Path(split_dir)
    if streams is None:
        streams = discover_streams(split)
    _check_keys(split, streams)
    jobs = [(rel, key) for rel, keys in streams.items() for key in keys]
    pool = ThreadPoolExecutor(max_workers=n_thread)
    try:  # map keeps the order, so the first bad file in order is reported
        found = list(tqdm(pool.map(lambda job: _read_shape(split / job[0] / f'{job[1]}.png'), jobs),
                          total=len(jobs), desc='Checking images', unit='image', disable=not progress))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    shapes: dict[str, dict[str, Shape]] = {rel: {} for rel in streams}
    for (rel, key), shape in zip(jobs, found):
        shapes[rel][key] = shape
    hr_reference = shapes['HR/VIS']

    for rel, by_key in shapes.items():
        name = rel.rsplit('/', 1)[1]
        dtype, channels = STREAM_FORMATS[name]
        level = rel.rsplit('/', 1)[0]
        reference = shapes[f'{level}/VIS']
        scale = 1 if level == 'HR' else int(level.split('/')[1][1:])
        for key, (height, width, chans, kind) in by_key.items():
            path = split / rel / f'{key}.png'
            if (kind, chans) != (dtype, channels):
                raise LmdbInputError(f'{path} is {chans}-channel {kind}, but {name} images must be '
                                     f'{channels}-channel {dtype} (see datasets/README.md); convert it.')
            ref_h, ref_w = reference[key][:2]
            if (height, width) != (ref_h, ref_w):
                raise LmdbInputError(f'size mismatch for key {key!r}: {path} is {height}x{width} (HxW) but '
                                     f'{split / level / "VIS" / key}.png is {ref_h}x{ref_w}; all streams of a '
                                     'key must have the same size at one resolution: regenerate them.')
            if scale > 1 and name == 'VIS':
                hr_h, hr_w = hr_reference[key][:2]
                hr_path = image_path(split, 'VIS', key)
                if hr_h % scale or hr_w % scale:
                    raise LmdbInputError(f'{hr_path} is {hr_h}x{hr_w} (HxW), not divisible by scale {scale}; '
                                         f'crop HR to a multiple of every scale and regenerate LR_bicubic.')
                if (height, width) != (hr_h // scale, hr_w // scale):
                    raise LmdbInputError(f'{path} is {height}x{width} (HxW) but {hr_path} is {hr_h}x{hr_w}, '
                                         f'so X{scale} must be {hr_h // scale}x{hr_w // scale} (HR / {scale}); '
                                         'regenerate the LR images.')
    _check_meta_info(split, shapes['HR/VIS'])
    return shapes


def _default_output(input_dir: Path) -> Path:
    """Return ``<input>_lmdb`` beside the input folder.

    Args:
        input_dir: The split folder.
    """
    if input_dir.name in ('', '.', '..'):
        input_dir = input_dir.resolve()
    return input_dir.parent / f'{input_dir.name}_lmdb'


def create_lmdbs(input_dir: PathLike, output_dir: Optional[PathLike] = None, compress_level: int = 1,
                 n_thread: int = 1, progress: bool = True) -> dict[str, str]:
    """Convert a split folder to one LMDB per stream folder, mirroring its tree.

    Args:
        input_dir: Split folder in the canonical layout, e.g. ``datasets/Synthetic/train``.
        output_dir: Output folder; ``<input_dir>_lmdb`` when None. It must not exist.
        compress_level: PNG compression level (0-9) of the images stored in the LMDBs.
        n_thread: Threads to check the images and processes to read them while writing.
        progress: Whether to show the progress bars of this tool (BasicSR always shows its own).

    Returns:
        Stream path relative to the split (``'HR/VIS'``, ...) -> path of its LMDB.

    Raises:
        LmdbInputError: Bad options, an existing output, or a split that fails :func:`validate_split`;
            nothing is written then.
    """
    if not isinstance(compress_level, int) or not 0 <= compress_level <= 9:
        raise LmdbInputError(f'compress level must be an integer from 0 to 9, got {compress_level!r}.')
    if not isinstance(n_thread, int) or n_thread < 1:
        raise LmdbInputError(f'n_thread must be a positive integer, got {n_thread!r}.')
    split = Path(input_dir)
    streams = discover_streams(split)  # cheap (lists folders); raises for a missing input or bad layout
    output = Path(output_dir) if output_dir is not None else _default_output(split)
    if output.exists():
        raise LmdbInputError(f'output {output} already exists; delete it or choose another folder with '
                             '--output (nothing was written).')
    if output.resolve() == split.resolve() or split.resolve() in output.resolve().parents:
        raise LmdbInputError(f'output {output} is inside the input split {split}; choose a folder outside it '
                             'with --output.')
    shapes = validate_split(split, streams, n_thread=n_thread, progress=progress)

    from basicsr.utils.lmdb_util import make_lmdb_from_imgs  # slow import (torch): only once input is valid

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f'.{output.name}.partial-{os.getpid()}'
    try:
        for rel in tqdm(streams, desc='Writing LMDBs', unit='lmdb', disable=not progress):
            lmdb_path = staging / f'{rel}{LMDB_EXT}'
            lmdb_path.parent.mkdir(parents=True, exist_ok=True)
            # BasicSR estimates the map size from the first image only; size it from all of them instead.
            raw = sum(h * w * c * dtype.itemsize + h + 16384 for h, w, c, dtype in shapes[rel].values())
            # Its prints name the staging folder; keep stdout for this tool's summary (tqdm uses stderr).
            with open(os.devnull, 'w') as quiet, contextlib.redirect_stdout(quiet):
                make_lmdb_from_imgs(str(split / rel), str(lmdb_path), [f'{k}{IMAGE_EXT}' for k in streams[rel]],
                                    streams[rel], compress_level=compress_level,
                                    multiprocessing_read=n_thread > 1, n_thread=n_thread,
                                    map_size=2 * raw + (1 << 20))
        shutil.copyfile(split / META_INFO, staging / META_INFO)
        if output.exists():
            raise LmdbInputError(f'output {output} appeared while writing; delete it or choose another '
                                 'folder with --output.')
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {rel: str(output / f'{rel}{LMDB_EXT}') for rel in streams}
