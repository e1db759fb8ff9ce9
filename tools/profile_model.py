#!/usr/bin/env python
"""Profile SR networks on one frame: parameters, GFLOPs, latency and peak memory.

Default: the paper's CSPSR beside BasicSR's EDSR baseline (x4) on a 582x429 HR frame, on the CPU.
What each figure means: :mod:`cspsr_arch.benchmark.profile`.

Usage: ``python tools/profile_model.py [--models CSPSR EDSR RCAN HAT ConcatNIR] [--hr 582x429] [--scale 4]
[--runs 5] [--device cpu] [--compile] [--half] [--json results/profile.json]``.
"""
import argparse
import sys
from typing import List, Optional

from cspsr_arch.benchmark.profile import MODELS, run_profile
from cspsr_arch.errors import CSPSRInputError


def main(argv: Optional[List[str]] = None) -> int:
    """Profile the models and print a table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=['CSPSR', 'EDSR'], choices=MODELS)
    parser.add_argument('--hr', default='582x429', help='HR frame WxH (cropped to a multiple of the scale)')
    parser.add_argument('--scale', type=int, default=4, choices=[2, 3, 4])
    parser.add_argument('--runs', type=int, default=5, help='timed forward passes (median reported)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--compile', action='store_true',
                        help='also time the torch.compile (inductor) networks: one more row per model')
    parser.add_argument('--half', action='store_true',
                        help='also time each network in half precision, as basicsr infer --half runs it (bf16 on '
                             'a CPU with bf16 instructions, bf16 or fp16 on a GPU): one more row per model')
    parser.add_argument('--json', default=None, help='also write the figures to this JSON file')
    args = parser.parse_args(argv)
    try:
        run_profile(args.models, args.hr, args.scale, args.runs, args.device, args.compile, args.json, args.half)
    except CSPSRInputError as err:
        print(f'profile_model.py: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
