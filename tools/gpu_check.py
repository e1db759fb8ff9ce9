#!/usr/bin/env python
"""Check the CUDA path of the project in one command: PASS / FAIL table, one JSON file, exit status.

Checks (in this order; ``--only`` picks some): ``equivalence`` (CSPSR with the fused and the reference DMF, the
learned CVM, the warp, L_CSSC and the bicubic heads, forward and backward, CUDA against a CPU reference in fp32),
``infer`` (``basicsr infer`` on CUDA, untiled against the CPU, tiled against untiled), ``train`` (``basicsr train``
with options/train_CSPSR_x4.yml on generated synthetic data: the loss falls, ``--auto_resume`` continues at the
saved iteration), ``ddp`` (one-process ``torchrun`` with NCCL), ``compile`` (``torch.compile`` against eager on
CUDA), ``timing`` (training it/s, inference latency and peak memory of CSPSR, EDSR and ConcatNIR, fp32 and bf16).
What each means and its tolerances: docs/gpu.md.

Exit status: 0 all passed on CUDA; 1 a check failed; 3 no CUDA (only the CPU reference parts ran: never a
passed GPU check); 4 CUDA, nothing failed, but some checks were skipped (time budget, missing Triton).

Usage: ``python tools/gpu_check.py [--out results/gpu_check.json] [--quick] [--only equivalence infer ...]
[--budget 270] [--tiny] [--cpu-train] [--cpu-timing] [--workdir DIR]``.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from cspsr_arch.gpu_check.runner import CHECKS, Settings, run


def main(argv: Optional[List[str]] = None) -> int:
    """Run the GPU check; returns its exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='results/gpu_check.json', help='JSON file (default: results/gpu_check.json)')
    parser.add_argument('--quick', action='store_true', help='fewer training iterations and timed runs')
    parser.add_argument('--only', nargs='+', choices=CHECKS, default=None, metavar='CHECK',
                        help=f'run only these checks, among {", ".join(CHECKS)}')
    parser.add_argument('--budget', type=float, default=270.0,
                        help='time budget of the whole run in seconds (default 270: under 5 minutes on one GPU); '
                        'checks that would start with too little time left are SKIPPED')
    parser.add_argument('--tiny', action='store_true', help='tiny networks and inputs everywhere (a smoke run)')
    parser.add_argument('--cpu-train', action='store_true',
                        help='without CUDA, run the training, resume and DDP (gloo) checks on the CPU, tiny')
    parser.add_argument('--cpu-timing', action='store_true', help='without CUDA, time tiny networks on the CPU')
    parser.add_argument('--workdir', default=None, help='keep the working files here (default: a temporary folder)')
    args = parser.parse_args(argv)
    settings = Settings(out=Path(args.out), quick=args.quick, only=args.only, budget_s=args.budget, tiny=args.tiny,
                        cpu_train=args.cpu_train, cpu_timing=args.cpu_timing,
                        workdir=Path(args.workdir) if args.workdir else None)
    return run(settings)


if __name__ == '__main__':
    sys.exit(main())
