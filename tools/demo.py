#!/usr/bin/env python
"""``make demo``: train a small CSPSR and a VIS-only network on the embedded synthetic data (CPU) and score them.

See :mod:`cspsr_arch.benchmark.demo`. Usage:
``python tools/demo.py [--opt options/demo_CSPSR_x4.yml options/demo_VISonly_x4.yml] [--data datasets/demo]
[--out results/demo] [--min-gain 1.0]``.
"""
import sys

from cspsr_arch.benchmark.demo import main

if __name__ == '__main__':
    sys.exit(main())
