#!/usr/bin/env python
"""Where does a trained network's NIR contribution go? CSFT gates, dynamic kernels and gradient shares over training.

For every ``models/net_g_<iter>.pth`` of each run, on a few images of a validation split (never the test split):
the input-gradient ratio NIR / VIS, the share of the VIS loss's gradient on CSPSR's NIR branch and on its
cross-view matching, and per DMF module (averaged) the CSFT gates, the NIR term's share of the fused VIS
feature, the relative change of the VIS features and the dynamic kernels' centre weight and entropy.
Definitions: :mod:`cspsr_arch.benchmark.nir_use`.

Usage::

    python tools/nir_diagnostics.py results/benchmark/cpu/experiments/CSPSR_x4 [more runs ...] \\
        --split results/benchmark/cpu/data/val [--scale 4] [--max-images 4] [--json out.json]
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('runs', nargs='+', help='experiment folders (experiments/<name>, with <name>.yml and models/)')
    p.add_argument('--split', required=True, help='validation split in the canonical layout (not the test split)')
    p.add_argument('--scale', type=int, default=4, help='scale factor (default: 4)')
    p.add_argument('--max-images', type=int, default=4, help='images of the split to average over (default: 4)')
    p.add_argument('--json', default=None, help='also write every row to this JSON file')
    args = p.parse_args(argv)

    import torch

    from cspsr_arch.benchmark.nir_use import diagnose_run, markdown_table
    from cspsr_arch.errors import CSPSRInputError
    torch.set_grad_enabled(True)
    results = {}
    try:
        for run in args.runs:
            results[Path(run).name] = rows = diagnose_run(run, args.split, args.scale, args.max_images)
            print(f'## {Path(run).name}\n\n{markdown_table(rows)}\n')
    except CSPSRInputError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
