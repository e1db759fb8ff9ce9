"""The command lines of the preparation tools: argument parsing, one call into :mod:`cspsr_arch.prep`, a summary.

``tools/prepare_data.py``, ``tools/create_lmdb.py``, ``tools/make_synthetic_rgbnir.py`` and
``tools/make_semisynthetic_rgbnir.py`` each call one function here (named after the tool), so the tests run
the same entry points in-process. Each returns the exit status: 0 on success, 2 on bad input (the message
on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.helptext import plain
from cspsr_arch.prep import semisynthetic
from cspsr_arch.prep.lmdb import LmdbInputError, _default_output, create_lmdbs
from cspsr_arch.prep.prepare import DEFAULT_LIMIT, prepare
from cspsr_arch.prep.registration import MISALIGNED_POLICIES, registration_summary
from cspsr_arch.prep.semisynthetic import build_dataset as build_semisynthetic
from cspsr_arch.prep.sources import DEFAULT_SPLITS, FRAME_LISTS, LAYOUTS
from cspsr_arch.prep.synthetic.build import DEFAULT_TEST_SCENES, build_dataset as build_synthetic
from cspsr_arch.prep.synthetic.scenes import EXTRA_SCENES, SCENES

PREPARE_DATA = 'Convert a downloaded RGB-NIR data set to the canonical cross-spectral layout (datasets/README.md).'
PREPARE_LAYOUTS = '''Layouts (--root holds):
  pairs          <name>_rgb.<ext> and <name>_nir.<ext> side by side (png, jpg, bmp, tif; 8 or 16 bits), e.g.
                 field_001_rgb.png + field_001_nir.png: your own pairs (docs/custom_data.md)
  nirscene       the EPFL RGB-NIR scene data set: <category>/NNNN_rgb.tiff + NNNN_nir.tiff
  ranus          RGB/<seq>/<frame>.png + NIR/<seq>/<frame>.png
  rgbnir-stereo  the RGB-NIR stereo set (Zhi et al.): <video>/RGBResize/*.png, <video>/NIRResize/*.png, lists/
'''
PREPARE_EXAMPLE = '''Example (your own registered pairs, misregistered ones warped onto the VIS):
  python tools/prepare_data.py pairs --root my_pairs/train --out datasets/Custom --split train --scales 4 \\
      --misaligned register'''
MAKE_SYNTHETIC = ('Build the embedded synthetic cross-spectral stereo set (VIS left, NIR right) from '
                  "scikit-image's photographs.")
MAKE_SEMISYNTHETIC = ('Build a semi-synthetic cross-spectral stereo set from real, registered VIS/NIR pairs: real '
                      'spectra, known geometry.')


def prepare_data(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/prepare_data.py``: parse the arguments, run it, print a summary.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 2 on bad input (message on stderr, no traceback).
    """
    parser = argparse.ArgumentParser(description=PREPARE_DATA, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=PREPARE_LAYOUTS + '\nSplits by default: ' + '; '.join(
                                         f'{k}: {" ".join(v)}' for k, v in DEFAULT_SPLITS.items()) + '.\n\n'
                                     + PREPARE_EXAMPLE)
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
    parser.add_argument('--misaligned', choices=MISALIGNED_POLICIES, default='keep',
                        help='registered-pair layouts (nirscene, ranus, pairs): every pair is measured; one beyond '
                        '--max-misalignment is kept as it is (default; a stereo rig\'s pairs measure their parallax), '
                        'skipped, refused (error), or registered (the NIR warped onto the VIS, which is never '
                        'changed; pairs that stay beyond the limit are left out)')
    parser.add_argument('--max-misalignment', type=float, default=DEFAULT_LIMIT,
                        help=f'registration limit in source pixels (default {DEFAULT_LIMIT}; registered pairs measure '
                        '0.5-1.5)')
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return exit_request.code if isinstance(exit_request.code, int) else 2
    start = time.time()
    try:
        summaries = prepare(args.layout, args.root, args.out, args.scales, args.split, args.subset, args.crop_size,
                            args.step, args.n_proc, args.lmdb, frames=args.frames, misaligned=args.misaligned,
                            max_misalignment=args.max_misalignment)
    except CSPSRInputError as error:
        print(f'prepare_data.py: error: {error}', file=sys.stderr)
        return 2
    for name, summary in summaries.items():
        kept, total = summary['keypoints']
        print(f'{Path(args.out) / name}: {summary["pairs"]} pairs ({summary["skipped"]} already done), '
              f'{summary["images"]} images per stream' + (f', {kept} of {total} keypoints kept' if total else ''))
        records = summary['registration']
        for key, record in records.items():
            print(f'  {key}: {record["line"]}')
        if records:
            print('  ' + registration_summary(list(records.values()), args.max_misalignment))
        for change, count in sorted(summary['cropped'].items()):
            print(f'  cropped (bottom rows / right columns dropped) {change}: {count} pair(s)')
        if 'lmdb' in summary:
            print(f'  {summary["lmdb"]}')
    print(f'done in {time.time() - start:.1f} s')
    return 0


def create_lmdb(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/create_lmdb.py``: parse the arguments, run it, print a summary.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 2 on bad input (message on stderr, no traceback).
    """
    parser = argparse.ArgumentParser(description='Convert a cross-spectral split folder (datasets/README.md) '
                                     'to one LMDB per stream folder, mirroring its tree.')
    parser.add_argument('--input', required=True, help='split folder, e.g. datasets/Synthetic/train')
    parser.add_argument('--output', default=None, help='output folder (default: <input>_lmdb); must not exist')
    parser.add_argument('--compress-level', type=int, default=1, choices=range(10), metavar='{0..9}',
                        help='PNG compression level of the stored images (default: 1)')
    parser.add_argument('--n-thread', type=int, default=1, help='threads/processes for reading (default: 1)')
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return exit_request.code if isinstance(exit_request.code, int) else 2
    try:
        written = create_lmdbs(args.input, args.output, compress_level=args.compress_level,
                               n_thread=args.n_thread)
    except LmdbInputError as error:
        print(f'create_lmdb.py: error: {error}', file=sys.stderr)
        return 2
    output = args.output if args.output is not None else _default_output(Path(args.input))
    print(f'Wrote {len(written)} LMDBs and meta_info.txt to {output}:')
    for rel, path in written.items():
        print(f'  {rel}: {path}')
    return 0


def make_synthetic_rgbnir(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/make_synthetic_rgbnir.py``: parse the arguments, run it, print a summary.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 2 on bad input (message on stderr).
    """
    p = argparse.ArgumentParser(description=MAKE_SYNTHETIC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output folder (writes OUT/train and OUT/test)')
    p.add_argument('--scales', type=int, nargs='+', default=[2, 4], help='SR scales (default: 2 4)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--scenes', nargs='+', default=None, choices=SCENES + EXTRA_SCENES,
                   help=f'scenes to use (default: {" ".join(SCENES)}; {" ".join(EXTRA_SCENES)} are low-texture extras for '
                        'test splits)')
    p.add_argument('--test-scenes', nargs='*', default=None, choices=SCENES + EXTRA_SCENES,
                   help=f'scenes of the test split (default: {" ".join(DEFAULT_TEST_SCENES)})')
    p.add_argument('--max-size', type=int, default=480, help='longest HR side (default: 480)')
    p.add_argument('--variants', type=int, default=2, help='variants per train scene (default: 2)')
    p.add_argument('--overwrite', action='store_true', help='replace existing non-empty split folders')
    args = p.parse_args(argv)
    start = time.time()
    try:
        keys, infos = build_synthetic(args.out, args.scales, args.seed, test_scenes=args.test_scenes, scenes=args.scenes,
                                      max_size=args.max_size, variants=args.variants, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    for info in infos:
        lo, hi = info['disp_l']
        print(f"{info['split']:5s} {info['key']:14s} {info['size'][0]:4d}x{info['size'][1]:<4d} "
              f"disp_l {lo:5.1f}..{hi:5.1f} px  occluded {100 * info['occluded']:4.1f}%  {', '.join(info['effects'])}")
    counts = ', '.join(f'{split}: {len(k)}' for split, k in keys.items())
    print(f'wrote {counts} scenes, scales {sorted(set(args.scales))}, to {args.out} in {time.time() - start:.1f} s')
    return 0


def make_semisynthetic_rgbnir(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/make_semisynthetic_rgbnir.py``: parse the arguments, run it, print a summary.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 2 on bad input (message on stderr).
    """
    p = argparse.ArgumentParser(description=MAKE_SEMISYNTHETIC,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=plain(semisynthetic.__doc__))
    p.add_argument('--input', required=True, help='folder of <name>_rgb.* / <name>_nir.* pairs')
    p.add_argument('--out', required=True, help='output folder (writes OUT/train and OUT/test)')
    p.add_argument('--scales', type=int, nargs='+', default=[2, 4], help='SR scales (default: 2 4)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--test-scenes', nargs='*', default=None,
                   help='pair names of the test split (default: the last third of the names; none: all train)')
    p.add_argument('--max-size', type=int, default=None, help='shrink images to this longest side first')
    p.add_argument('--variants', type=int, default=2, help='variants per training pair (default: 2)')
    p.add_argument('--misaligned', choices=MISALIGNED_POLICIES, default='error',
                   help='pairs beyond the registration limit: error (default), skip them, keep them, or register '
                   'them (the NIR warped onto the VIS; pairs that stay beyond the limit are skipped)')
    p.add_argument('--test-misaligned', choices=MISALIGNED_POLICIES, default=None,
                   help='the same for the pairs of --test-scenes (default: as --misaligned), e.g. keep test '
                   'photographs as they were taken while registering the training pairs')
    p.add_argument('--max-misalignment', type=float, default=2.5, help='registration limit in pixels (default 2.5)')
    p.add_argument('--exclude', nargs='*', default=(), help='pair names left out of both splits')
    p.add_argument('--overwrite', action='store_true', help='replace existing non-empty split folders')
    args = p.parse_args(argv)
    start = time.time()
    try:
        keys, infos = build_semisynthetic(args.input, args.out, args.scales, args.seed, test_scenes=args.test_scenes,
                                         max_size=args.max_size, variants=args.variants, misaligned=args.misaligned,
                                         max_misalignment=args.max_misalignment, overwrite=args.overwrite,
                                         test_misaligned=args.test_misaligned, exclude=args.exclude)
    except (CSPSRInputError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    for info in infos:
        state = ('excluded' if 'split' not in info and not info['skipped'] else '' if info['skipped'] else
                 f"{info['split']:5s} {info['size'][0]}x{info['size'][1]} disp_l {info['disp_l'][0]:.1f}.."
                 f"{info['disp_l'][1]:.1f} px")
        print(f"{info['key']:20s} {info['line']}" + (f'  -> {state}' if state else ''))
    used = [info for info in infos if info['key'] not in args.exclude]
    print(registration_summary(used, args.max_misalignment) + (f' {len(infos) - len(used)} excluded.' if
                                                               len(used) < len(infos) else ''))
    counts = ', '.join(f'{split}: {len(k)}' for split, k in keys.items())
    print(f'wrote {counts} images, scales {sorted(set(args.scales))}, to {args.out} in {time.time() - start:.1f} s')
    return 0
