#!/usr/bin/env python
"""Convert a downloaded RGB-NIR data set to the canonical cross-spectral layout (datasets/README.md).

Layouts (see ``cspsr_arch/data/layouts.py``): ``rgbnir-stereo`` (Zhi et al., CVPR 2018; splits train and
test, keys ``<video>_<frame>``), ``nirscene`` (EPFL RGB-NIR scene), ``ranus``, ``pairs``
(``<name>_rgb.<ext>`` + ``<name>_nir.<ext>``). For every pair the tool writes, under ``<out>/<split>/``:

* ``HR/VIS/<key>.png`` (8-bit BGR) and ``HR/NIR/<key>.png`` (8-bit, one channel; a NIR stored with three
  equal channels is reduced to one, three unequal channels are an error); 16-bit sources become 8-bit
  (value / 257).
* ``LR_bicubic/X<s>/{VIS,NIR}/<key>.png`` = ``imresize(HR, 1/s)`` (BasicSR's MATLAB-style bicubic), rounded.
* ``DISP_SPARSE/<key>.txt`` where the source has sparse disparity (RGB-NIR stereo keypoints), in HR pixels
  (format: :func:`cspsr_arch.data.layouts.read_sparse_disparity`).
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

Re-running skips pairs whose outputs are complete (a record per pair under ``<split>/.prepare/``,
written after its images, notes the source files). Files are written to a temporary name and moved into
place, so an interrupted run leaves no partial image under a final name; its pair has no record and is
redone. ``--lmdb`` then converts each split with ``tools/create_lmdb.py`` (to ``<out>/<split>_lmdb``).

Usage::

    python tools/prepare_data.py rgbnir-stereo --root /data/rgbnir_stereo --out datasets/RGBNIRStereo --scales 2 4
    python tools/create_lmdb.py --input datasets/RGBNIRStereo/train
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Dict, Optional, Sequence

from tqdm import tqdm

from cspsr_arch.data.layouts import DEFAULT_SPLITS, FRAME_LISTS, LAYOUTS, SourcePair, scan_layout
from cspsr_arch.errors import CSPSRInputError

FORMAT_VERSION = 1
TEMP_RE = re.compile(r'^\..+\.tmp-\d+$')


def load_tool_module(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` (tools/ is not a package) once, under the name the tests use.

    Args:
        name: File stem, e.g. ``'create_lmdb'``.
    """
    module_name = f'cspsr_tool_{name}'
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, Path(__file__).resolve().parent / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


pair_tool = load_tool_module('_prepare_pair')
RECORDS, SPARSE_DIR, process_pair, write_atomic = (pair_tool.RECORDS, pair_tool.SPARSE_DIR, pair_tool.process_pair,
                                                   pair_tool.write_atomic)


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
    (split / 'meta_info.txt').unlink(missing_ok=True)  # written again once every pair is done
    levels = ['HR'] + [f'LR_bicubic/X{s}' for s in scales]
    folders = [split, split / RECORDS, split / RECORDS / 'items']
    folders += [split / level / stream for level in levels for stream in ('VIS', 'NIR')]
    for folder in folders + ([split / SPARSE_DIR] if sparse else []):
        folder.mkdir(parents=True, exist_ok=True)
        for entry in folder.iterdir():
            if TEMP_RE.match(entry.name):
                entry.unlink()


def prepare_split(split: Path, pairs: Sequence[SourcePair], settings: dict, n_proc: int = 1,
                  progress: bool = True) -> dict:
    """Prepare one split: every pair (in parallel), then ``meta_info.txt``.

    Args:
        split: Output split folder.
        pairs: Its source pairs.
        settings: ``layout``, ``scales``, ``crop_size``, ``step``, for rgbnir-stereo ``frames`` (and the format
            version).
        n_proc: Worker processes.
        progress: Show a progress bar.

    Returns:
        Summary: ``pairs``, ``skipped``, ``images`` (output keys), ``cropped`` (Counter of size changes),
        ``keypoints`` ([kept, total]).
    """
    scales = tuple(settings['scales'])
    sparse = any(p.keypoints for p in pairs)
    _start_split(split, settings, sparse, scales)
    jobs = [(str(split), pair, scales, settings['crop_size'], settings['step']) for pair in pairs]
    records = []
    with tqdm(total=len(jobs), desc=f'Preparing {split}', unit='pair', disable=not progress) as bar:
        if n_proc > 1 and len(jobs) > 1:
            with multiprocessing.get_context('fork').Pool(min(n_proc, len(jobs)), initializer=_init_worker) as pool:
                for record in pool.imap_unordered(process_pair, jobs):
                    records.append(record)
                    bar.update()
        else:
            for job in jobs:
                records.append(process_pair(job))
                bar.update()
    meta, cropped, kept, total = [], Counter(), 0, 0
    for record in records:
        meta += [f'{key}.png ({h},{w},3)' for key, h, w in record['outputs']]
        height, width = record['size']
        lcm = math.lcm(*scales)
        if height % lcm or width % lcm:
            cropped[f'{width}x{height} -> {width - width % lcm}x{height - height % lcm}'] += 1
        kept, total = kept + record['keypoints'][0], total + record['keypoints'][1]
    keys = sorted(line.split('.png')[0] for line in meta)
    duplicates = [k for k, n in Counter(keys).items() if n > 1]
    if duplicates:
        raise CSPSRInputError(f'two pairs give the output key {duplicates[0]!r} in {split}; rename one of them.')
    stale = sorted({p.stem for p in (split / 'HR' / 'VIS').glob('*.png')} - set(keys))
    if stale:
        raise CSPSRInputError(f'{split / "HR" / "VIS" / stale[0]}.png ({len(stale)} stale key(s)) comes from an '
                              'earlier run with other source files; delete the split folder and prepare it again.')
    write_atomic(split / 'meta_info.txt', ('\n'.join(sorted(meta)) + '\n').encode())
    return {'pairs': len(records), 'skipped': sum(r['skipped'] for r in records), 'images': len(keys),
            'cropped': cropped, 'keypoints': [kept, total]}


def _lmdb(split: Path, n_proc: int, progress: bool) -> str:
    """Convert a split to ``<split>_lmdb`` unless an up-to-date one is there; returns what was done.

    Args:
        split: The split folder.
        n_proc: Threads for create_lmdb.
        progress: Show progress bars.
    """
    output = split.parent / f'{split.name}_lmdb'
    meta = output / 'meta_info.txt'
    newest = max((p.stat().st_mtime_ns for p in (split / RECORDS / 'items').iterdir()), default=0)
    if meta.is_file() and meta.read_bytes() == (split / 'meta_info.txt').read_bytes() and \
            meta.stat().st_mtime_ns >= newest:
        return f'{output} is up to date'
    if output.exists():
        shutil.rmtree(output)
    tool = load_tool_module('create_lmdb')
    try:
        tool.create_lmdbs(split, output, n_thread=max(n_proc, 1), progress=progress)
    except tool.LmdbInputError as error:
        raise CSPSRInputError(str(error)) from None
    return f'wrote {output}'


def prepare(layout: str, root: str, out: str, scales: Sequence[int] = (2, 4), splits: Optional[Sequence[str]] = None,
            subset: Optional[Sequence[str]] = None, crop_size: Optional[int] = None, step: Optional[int] = None,
            n_proc: int = 1, lmdb: bool = False, progress: bool = True,
            frames: Optional[str] = None) -> Dict[str, dict]:
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
        lmdb: Also convert every split to ``<out>/<split>_lmdb`` with tools/create_lmdb.py.
        progress: Show progress bars.
        frames: Frame lists of rgbnir-stereo, ``clean`` (default) or ``paper`` (see the module docstring);
            recorded in the split's settings, so a split prepared with the other lists is refused.

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
    plan = scan_layout(layout, root, splits, subset, frames or 'clean')
    settings = {'format': FORMAT_VERSION, 'layout': layout, 'scales': scales, 'crop_size': crop_size or None,
                'step': step if crop_size else None}
    if frames:
        settings['frames'] = frames
    summaries = {}
    for split_name, pairs in plan.items():
        if not pairs:
            raise CSPSRInputError(f'no pairs found for split {split_name} in {root}.')
        split = Path(out) / split_name
        summaries[split_name] = prepare_split(split, pairs, settings, n_proc, progress)
        if lmdb:
            summaries[split_name]['lmdb'] = _lmdb(split, n_proc, progress)
    return summaries


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line tool.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 2 on bad input (message on stderr, no traceback).
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     epilog='Splits by default: ' + '; '.join(f'{k}: {" ".join(v)}'
                                                                              for k, v in DEFAULT_SPLITS.items()))
    parser.add_argument('layout', choices=LAYOUTS, help='source layout')
    parser.add_argument('--root', required=True, help='the downloaded data set folder')
    parser.add_argument('--out', required=True, help='output folder, e.g. datasets/RGBNIRStereo')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 4], help='SR scales (default: 2 4)')
    parser.add_argument('--split', nargs='+', default=None, help='output split(s): train/test for rgbnir-stereo, '
                        'one name for the other layouts (default: test)')
    parser.add_argument('--subset', nargs='+', default=None, help='videos, categories or sequences to prepare')
    parser.add_argument('--frames', choices=FRAME_LISTS, default=None,
                        help='rgbnir-stereo frame lists: clean (default) = 8 training videos / 4 test videos; paper '
                        '= the CSPSR authors\' lists: in each test video the frames at positions 0, 5, 10, ... of '
                        'its frame list are the test set, its other frames are added to training')
    parser.add_argument('--crop-size', type=int, default=None, help='cut HR images into sub-images of this side')
    parser.add_argument('--step', type=int, default=None, help='sub-image step (default: crop size / 2)')
    parser.add_argument('--n-proc', type=int, default=os.cpu_count() or 1, help='worker processes (default: all cores)')
    parser.add_argument('--lmdb', action='store_true', help='then convert each split to <out>/<split>_lmdb')
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return exit_request.code if isinstance(exit_request.code, int) else 2
    start = time.time()
    try:
        summaries = prepare(args.layout, args.root, args.out, args.scales, args.split, args.subset, args.crop_size,
                            args.step, args.n_proc, args.lmdb, frames=args.frames)
    except CSPSRInputError as error:
        print(f'prepare_data.py: error: {error}', file=sys.stderr)
        return 2
    for name, summary in summaries.items():
        kept, total = summary['keypoints']
        print(f'{Path(args.out) / name}: {summary["pairs"]} pairs ({summary["skipped"]} already done), '
              f'{summary["images"]} images per stream' + (f', {kept} of {total} keypoints kept' if total else ''))
        for change, count in sorted(summary['cropped'].items()):
            print(f'  cropped (bottom rows / right columns dropped) {change}: {count} pair(s)')
        if 'lmdb' in summary:
            print(f'  {summary["lmdb"]}')
    print(f'done in {time.time() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
