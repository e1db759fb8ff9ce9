"""Conversion of a downloaded RGB-NIR data set to the canonical cross-spectral layout (``tools/prepare_data.py``).

Layouts (see ``cspsr_arch/prep/sources.py``): ``rgbnir-stereo`` (Zhi et al., CVPR 2018; splits train and
test, keys ``<video>_<frame>``), ``nirscene`` (EPFL RGB-NIR scene), ``ranus``, ``pairs``
(``<name>_rgb.<ext>`` + ``<name>_nir.<ext>``). For every pair the tool writes, under ``<out>/<split>/``:

* ``HR/VIS/<key>.png`` (8-bit BGR) and ``HR/NIR/<key>.png`` (8-bit, one channel; a NIR stored with three
  equal channels is reduced to one, three unequal channels are an error); 16-bit sources become 8-bit
  (value / 257).
* ``LR_bicubic/X<s>/{VIS,NIR}/<key>.png`` = ``imresize(HR, 1/s)`` (BasicSR's MATLAB-style bicubic), rounded.
* ``DISP_SPARSE/<key>.txt`` where the source has sparse disparity (RGB-NIR stereo keypoints), in HR pixels
  (format: :func:`cspsr_arch.prep.sources.read_sparse_disparity`).
* ``meta_info.txt`` (``<key>.png (H,W,3)`` per key).

HR sizes not divisible by every scale are cropped to a multiple of their lcm by dropping the last rows
and columns (bottom and right): the top-left origin stays, so keypoints keep their coordinates and both
stereo views lose the same columns. Nothing is ever resized. ``--crop-size C --step S`` cuts each cropped
image into C x C sub-images every S pixels (the last one flush with the border; an image side shorter
than C gives one tile of that side), keys ``<key>_s001``, ...; the LR tiles are cut at the same place from
the LR image of the whole frame, so HR and LR VIS/NIR tiles stay aligned.

``--frames`` chooses the frame lists of ``rgbnir-stereo``: ``clean`` (default) splits by video (8 training
videos, 4 test videos: no test scene is seen in training); ``paper`` reproduces the CSPSR authors' lists:
in each test video, the frames whose index is a multiple of 5 are the test set and the other frames join
the training set. A frame's index is its 0-based position in its video's frame list (the lines of
``lists/<video>.txt``, else the sorted file names), as the authors' loader enumerates it; the frame
number in the file name plays no part. Numbers from the two are not comparable (datasets/README.md,
"Comparing with the paper's figures").

Registered-pair layouts (``nirscene``, ``ranus``, ``pairs``) are measured pair by pair
(:func:`cspsr_arch.prep.registration.measure_misalignment`) and, by ``--misaligned``, a pair beyond
``--max-misalignment`` is kept as it is (the default: only reported; a stereo rig's pairs measure their
parallax), skipped, refused, or registered (the NIR warped onto the VIS, which is never touched; a pair
that stays beyond the limit is left out and reported). The record of every pair keeps its figures.

Re-running skips pairs whose outputs are complete (a record per pair under ``<split>/.prepare/``,
:mod:`cspsr_arch.prep.records`,
written after its images, notes the source files). Files are written to a temporary name and moved into
place, so an interrupted run leaves no partial image under a final name; its pair has no record and is
redone. ``--lmdb`` then converts each split with :func:`cspsr_arch.prep.lmdb.create_lmdbs` (to ``<out>/<split>_lmdb``).
The paths of the layout come from :mod:`cspsr_arch.prep.split`; the rules for one pair (what a worker
process does) are :func:`process_pair`.

Usage::

    python tools/prepare_data.py rgbnir-stereo --root /data/rgbnir_stereo --out datasets/RGBNIRStereo --scales 2 4
    python tools/create_lmdb.py --input datasets/RGBNIRStereo/train
"""
from __future__ import annotations

import json
import math
import multiprocessing
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from cspsr_arch.image_io import decode
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.records import RECORDS, SPARSE_DIR, load_record, record_path, source_stat
from cspsr_arch.prep.registration import MISALIGNED_POLICIES, check_pair
from cspsr_arch.prep.sources import SourcePair, format_sparse_disparity, parse_keypoints, scan_layout
from cspsr_arch.prep.split import (IMAGE_EXT, META_INFO, REQUIRED_STREAMS, bicubic_lr, image_path, meta_keys, meta_line,
                                   stream_dir, to_u8, write_atomic, write_image, write_meta_info)

FORMAT_VERSION = 1
TEMP_RE = re.compile(r'^\..+\.tmp-\d+$')
DEFAULT_LIMIT = 2.5
"""Default misalignment limit (pixels) of ``--max-misalignment``."""
MEASURED_LAYOUTS = ('nirscene', 'ranus', 'pairs')
"""Layouts of registered pairs (one camera, or aligned beforehand), whose registration is measured."""
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


Job = Tuple[str, SourcePair, Tuple[int, ...], Optional[int], Optional[int], Optional[str], float]


def process_pair(job: Job) -> dict:
    """Write every output of one pair (or find them done) and return its record.

    Args:
        job: (split folder, pair, scales, crop size, step, registration policy or None (not measured),
            misalignment limit).

    Returns:
        The record: ``source``, ``outputs`` ([key, H, W] per output key), ``size`` (source H, W),
        ``keypoints`` ([kept, total]), ``registration`` (:meth:`~cspsr_arch.prep.registration.PairCheck.record`
        and ``line``; None when not measured), and ``skipped`` (True when nothing was written: done before,
        or left out by the registration policy, ``registration['skipped']``).
    """
    split_name, pair, scales, crop_size, step, policy, limit = job
    split = Path(split_name)
    record = load_record(split, pair, scales)
    if record is not None:
        return {**record, 'skipped': True}
    record_path(split, pair.key).unlink(missing_ok=True)  # outdated: never trusted again, even if interrupted
    source = source_stat(pair)
    vis, nir = read_pair(pair)
    registration = None
    if policy is not None:
        nir, checked = check_pair(vis, nir, policy, limit)
        registration = {**checked.record(), 'line': checked.describe(), 'file': str(pair.nir)}
        if not checked.used:  # nothing written, no record kept: measured again on the next run
            return {'source': source, 'outputs': [], 'size': list(vis.shape[:2]), 'keypoints': [0, 0],
                    'registration': registration, 'skipped': True}
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
        images = {('VIS', None): vis[y:y + h, x:x + w], ('NIR', None): nir[y:y + h, x:x + w]}
        for s, (lr_vis, lr_nir) in lr.items():
            window = (slice(y // s, (y + h) // s), slice(x // s, (x + w) // s))
            images[('VIS', s)] = lr_vis[window]
            images[('NIR', s)] = lr_nir[window]
        for (stream, s), img in images.items():
            write_image(image_path(split, stream, key, s), img)
        if points is not None:
            inside = ((points[:, 0] >= x) & (points[:, 0] < x + w) & (points[:, 1] >= y) & (points[:, 1] < y + h))
            tile_points = points[inside] - np.array([x, y, 0, 0])
            write_atomic(split / SPARSE_DIR / f'{key}.txt', format_sparse_disparity(tile_points).encode())
        outputs.append([key, h, w])
    record = {'source': source, 'outputs': outputs, 'size': [height, width],
              'keypoints': [kept, 0 if points is None else len(points)], 'registration': registration}
    write_atomic(record_path(split, pair.key), json.dumps(record).encode())
    return {**record, 'skipped': False}


def _init_worker() -> None:
    """One torch thread per worker process (imresize runs on torch; the processes share the cores)."""
    import torch
    torch.set_num_threads(1)


def _start_split(split: Path, settings: dict, sparse: bool, scales: Sequence[int]) -> None:
    """Refuse a split prepared with other settings, create the folders, remove stale temporary files.

    Args:
        split: The split folder.
        settings: Layout, scales, crop size, step (and frame lists) of this run.
        sparse: Whether ``DISP_SPARSE`` is written.
        scales: Scales.
    """
    settings_file = split / RECORDS / 'settings.json'
    if settings_file.is_file():
        previous = json.loads(settings_file.read_text())
        if previous != settings:
            raise CSPSRInputError(f'{split} was prepared with other settings ({previous}, now {settings}); delete '
                                  f'{split} to prepare it again, or choose another --out.')
    elif split.is_dir() and any(split.iterdir()):
        raise CSPSRInputError(f'{split} exists and was not written by this tool; delete it or choose another --out.')
    (split / RECORDS).mkdir(parents=True, exist_ok=True)
    write_atomic(settings_file, json.dumps(settings).encode())
    (split / META_INFO).unlink(missing_ok=True)  # written again once every pair is done
    folders = [split, split / RECORDS, split / RECORDS / 'items']
    folders += [stream_dir(split, stream, s) for s in (None, *scales) for stream in REQUIRED_STREAMS]
    for folder in folders + ([split / SPARSE_DIR] if sparse else []):
        folder.mkdir(parents=True, exist_ok=True)
        for entry in folder.iterdir():
            if TEMP_RE.match(entry.name):
                entry.unlink()


def prepare_split(split: Path, pairs: Sequence[SourcePair], settings: dict, n_proc: int = 1,
                  progress: bool = True, max_misalignment: float = DEFAULT_LIMIT) -> dict:
    """Prepare one split: every pair (in parallel), then ``meta_info.txt``.

    Args:
        split: Output split folder.
        pairs: Its source pairs.
        settings: ``layout``, ``scales``, ``crop_size``, ``step``, for rgbnir-stereo ``frames`` (and the format
            version).
        n_proc: Worker processes.
        progress: Show a progress bar.
        max_misalignment: Registration limit (pixels) of the registered-pair layouts (their policy is
            ``settings['misaligned']``, default ``'keep'``).

    Returns:
        Summary: ``pairs``, ``skipped`` (done before), ``images`` (output keys), ``cropped`` (Counter of size
        changes), ``keypoints`` ([kept, total]), ``registration`` (pair key -> its registration record, for
        the registered-pair layouts).
    """
    scales = tuple(settings['scales'])
    sparse = any(p.keypoints for p in pairs)
    _start_split(split, settings, sparse, scales)
    policy = settings.get('misaligned', 'keep') if settings['layout'] in MEASURED_LAYOUTS else None
    jobs = [(str(split), pair, scales, settings['crop_size'], settings['step'], policy,
             max_misalignment) for pair in pairs]
    records = []
    with tqdm(total=len(jobs), desc=f'Preparing {split}', unit='pair', disable=not progress) as bar:
        if n_proc > 1 and len(jobs) > 1:
            with multiprocessing.get_context('fork').Pool(min(n_proc, len(jobs)), initializer=_init_worker) as pool:
                for record in pool.imap(process_pair, jobs):
                    records.append(record)
                    bar.update()
        else:
            for job in jobs:
                records.append(process_pair(job))
                bar.update()
    rejected = [f"{r['registration']['file']} ({r['registration']['line']})" for r in records
                if r.get('registration') and r['registration']['action'] == 'rejected']
    if rejected:
        raise CSPSRInputError(f'{len(rejected)} pair(s) of {split} are not registered (misalignment above '
                              f"{max_misalignment} px): " + '; '.join(rejected) + '. Pass --misaligned '
                              'register (warp the NIR onto the VIS), skip (leave them out) or keep (use them anyway).')
    meta, cropped, kept, total = [], Counter(), 0, 0
    for record in records:
        meta += [meta_line(key, h, w) for key, h, w in record['outputs']]
        height, width = record['size']
        lcm = math.lcm(*scales)
        if height % lcm or width % lcm:
            cropped[f'{width}x{height} -> {width - width % lcm}x{height - height % lcm}'] += 1
        kept, total = kept + record['keypoints'][0], total + record['keypoints'][1]
    keys = meta_keys(meta)
    duplicates = [k for k, n in Counter(keys).items() if n > 1]
    if duplicates:
        raise CSPSRInputError(f'two pairs give the output key {duplicates[0]!r} in {split}; rename one of them.')
    stale = sorted({p.stem for p in stream_dir(split, 'VIS').glob(f'*{IMAGE_EXT}')} - set(keys))
    if stale:
        raise CSPSRInputError(f'{image_path(split, "VIS", stale[0])} ({len(stale)} stale key(s)) comes from an '
                              'earlier run with other source files; delete the split folder and prepare it again.')
    write_meta_info(split, meta)
    registration = {pair.key: r['registration'] for pair, r in zip(pairs, records) if r.get('registration')}
    left_out = sum(bool(r.get('registration') and r['registration']['skipped']) for r in records)
    return {'pairs': len(records), 'skipped': sum(r['skipped'] for r in records) - left_out, 'images': len(keys),
            'cropped': cropped, 'keypoints': [kept, total], 'registration': registration}


def _lmdb(split: Path, n_proc: int, progress: bool) -> str:
    """Convert a split to ``<split>_lmdb`` unless an up-to-date one is there; returns what was done.

    Args:
        split: The split folder.
        n_proc: Threads for the LMDB conversion.
        progress: Show progress bars.
    """
    output = split.parent / f'{split.name}_lmdb'
    meta = output / META_INFO
    newest = max((p.stat().st_mtime_ns for p in (split / RECORDS / 'items').iterdir()), default=0)
    if meta.is_file() and meta.read_bytes() == (split / META_INFO).read_bytes() and \
            meta.stat().st_mtime_ns >= newest:
        return f'{output} is up to date'
    if output.exists():
        shutil.rmtree(output)
    from cspsr_arch.prep.lmdb import LmdbInputError, create_lmdbs
    try:
        create_lmdbs(split, output, n_thread=max(n_proc, 1), progress=progress)
    except LmdbInputError as error:
        raise CSPSRInputError(str(error)) from None
    return f'wrote {output}'


def prepare(layout: str, root: str, out: str, scales: Sequence[int] = (2, 4), splits: Optional[Sequence[str]] = None,
            subset: Optional[Sequence[str]] = None, crop_size: Optional[int] = None, step: Optional[int] = None,
            n_proc: int = 1, lmdb: bool = False, progress: bool = True, frames: Optional[str] = None,
            misaligned: str = 'keep', max_misalignment: float = DEFAULT_LIMIT) -> Dict[str, dict]:
    """Prepare a source data set in the canonical layout (see the module docstring).

    Args:
        layout: One of ``rgbnir-stereo``, ``nirscene``, ``ranus``, ``pairs``.
        root: The downloaded data set folder.
        out: Output folder (``datasets/<Name>``); splits go to ``<out>/<split>``.
        scales: SR scales (integers >= 2).
        splits: Output splits (default: train and test for rgbnir-stereo, test for the others).
        subset: Videos / categories / sequences to prepare (default all).
        crop_size: Sub-image side (a multiple of the lcm of the scales), or None for whole images.
        step: Sub-image step (multiple of the lcm); default half the crop size, rounded down to a multiple.
        n_proc: Worker processes.
        lmdb: Also convert every split to ``<out>/<split>_lmdb`` (:func:`cspsr_arch.prep.lmdb.create_lmdbs`).
        progress: Show progress bars.
        frames: Frame lists of rgbnir-stereo, ``clean`` (default) or ``paper`` (see the module docstring);
            recorded in the split's settings, so a split prepared with the other lists is refused.
        misaligned: What to do with a pair of a registered-pair layout (:data:`MEASURED_LAYOUTS`) measured beyond
            ``max_misalignment``: ``'keep'`` (default; reported only), ``'skip'``, ``'error'`` or ``'register'``
            (:data:`~cspsr_arch.prep.registration.MISALIGNED_POLICIES`). Other than ``'keep'``, recorded in the
            split's settings.
        max_misalignment: The limit in source pixels.

    Returns:
        Split -> summary (see :func:`prepare_split`), with ``lmdb`` when converted.

    Raises:
        CSPSRInputError: Bad options or input; the message names the file and the fix.
    """
    scales = sorted(set(int(s) for s in scales))
    if not scales or scales[0] < 2:
        raise CSPSRInputError(f'scales must be integers >= 2, got {scales}.')
    lcm = math.lcm(*scales)
    if step is not None and not crop_size:
        raise CSPSRInputError('--step needs --crop-size.')
    if crop_size:
        step = step if step is not None else max(crop_size // 2 // lcm * lcm, lcm)
        if crop_size % lcm or step <= 0 or step % lcm:
            raise CSPSRInputError(f'--crop-size ({crop_size}) and --step ({step}) must be positive multiples of '
                                  f'{lcm} (the lcm of the scales) so that the LR tiles stay aligned.')
    if n_proc < 1:
        raise CSPSRInputError(f'--n-proc must be at least 1, got {n_proc}.')
    if layout == 'rgbnir-stereo':
        frames = frames or 'clean'
    elif frames is not None:
        raise CSPSRInputError(f'--frames chooses the frame lists of rgbnir-stereo; the {layout} layout has none, '
                              'leave it out.')
    if misaligned not in MISALIGNED_POLICIES:
        raise CSPSRInputError(f'--misaligned must be one of {", ".join(MISALIGNED_POLICIES)}, got {misaligned!r}.')
    if misaligned != 'keep' and layout not in MEASURED_LAYOUTS:
        raise CSPSRInputError(f'--misaligned {misaligned}: the {layout} layout is a stereo pair (VIS left, NIR right), '
                              'whose parallax the cross-view matching finds; registration is for registered-pair '
                              f'layouts ({", ".join(MEASURED_LAYOUTS)}). Leave --misaligned out.')
    if max_misalignment <= 0:
        raise CSPSRInputError(f'--max-misalignment must be positive, got {max_misalignment}.')
    plan = scan_layout(layout, root, splits, subset, frames or 'clean')
    settings = {'format': FORMAT_VERSION, 'layout': layout, 'scales': scales, 'crop_size': crop_size or None,
                'step': step if crop_size else None}
    if misaligned != 'keep':  # changes the images written; 'keep' only measures (older splits stay valid)
        settings.update(misaligned=misaligned, max_misalignment=max_misalignment)

    if frames:
        settings['frames'] = frames
    summaries = {}
    for split_name, pairs in plan.items():
        if not pairs:
            raise CSPSRInputError(f'no pairs found for split {split_name} in {root}.')
        split = Path(out) / split_name
        summaries[split_name] = prepare_split(split, pairs, settings, n_proc, progress, max_misalignment)
        if lmdb:
            summaries[split_name]['lmdb'] = _lmdb(split, n_proc, progress)
    return summaries
