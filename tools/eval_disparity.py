#!/usr/bin/env python
"""Accuracy of CSPSR's cross-view matching: learned vs zero vs given disparity (the paper's Table 5 spirit).

Errors in LR pixels (RMSE, EPE, bad-pixel rate) on canonical splits with ``HR/DISP_L`` and on the
Middlebury motorcycle pair; what each method and figure means: :mod:`cspsr_arch.benchmark.disparity`.

Usage::

    python tools/eval_disparity.py --model experiments/CrossSpectralStereo_x4_Synthetic/models/net_g_latest.pth \\
        -opt options/train_disparity_synthetic_x4.yml --split datasets/Synthetic/test --scale 4 --middlebury \\
        [--out results/eval_disparity]
"""
import argparse
import sys
from typing import List, Optional

from cspsr_arch.benchmark.disparity import run_evaluation


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True, help='CrossSpectralStereoNet or CSPSR (cvm: learned) checkpoint')
    parser.add_argument('-opt', default=None, help='option file whose network_g built the checkpoint')
    parser.add_argument('--split', action='append', default=[], help='canonical split with HR/DISP_L (repeatable)')
    parser.add_argument('--middlebury', action='store_true', help='also the Middlebury motorcycle pair')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--bad-threshold', type=float, default=1.0, help='in LR pixels')
    parser.add_argument('--out', default='results/eval_disparity', help='report.md and report.json go here')
    args = parser.parse_args(argv)
    if not args.split and not args.middlebury:
        parser.error('give --split and/or --middlebury')
    return run_evaluation(args.model, args.opt, args.split, args.middlebury, args.scale, args.bad_threshold, args.out)


if __name__ == '__main__':
    sys.exit(main())
