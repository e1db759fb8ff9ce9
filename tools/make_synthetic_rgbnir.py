#!/usr/bin/env python
"""Build the embedded synthetic cross-spectral stereo set (VIS left, NIR right) from scikit-image's photographs.

What is rendered, and how, is described in :mod:`cspsr_arch.synthetic.build`.

Usage::

    python tools/make_synthetic_rgbnir.py --out datasets/Synthetic --scales 2 4 --seed 0
"""
import argparse
import sys
import time
from typing import Optional, Sequence

from cspsr_arch.synthetic.build import DEFAULT_TEST_SCENES, build_dataset
from cspsr_arch.synthetic.scenes import SCENES


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output folder (writes OUT/train and OUT/test)')
    p.add_argument('--scales', type=int, nargs='+', default=[2, 4], help='SR scales (default: 2 4)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--scenes', nargs='+', default=None, choices=SCENES, help='scenes to use (default: all)')
    p.add_argument('--test-scenes', nargs='*', default=None, choices=SCENES,
                   help=f'scenes of the test split (default: {" ".join(DEFAULT_TEST_SCENES)})')
    p.add_argument('--max-size', type=int, default=480, help='longest HR side (default: 480)')
    p.add_argument('--variants', type=int, default=2, help='variants per train scene (default: 2)')
    p.add_argument('--overwrite', action='store_true', help='replace existing non-empty split folders')
    args = p.parse_args(argv)
    start = time.time()
    try:
        keys, infos = build_dataset(args.out, args.scales, args.seed, test_scenes=args.test_scenes, scenes=args.scenes,
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


if __name__ == '__main__':
    sys.exit(main())
