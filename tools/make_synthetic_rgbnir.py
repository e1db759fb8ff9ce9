#!/usr/bin/env python
"""Build the embedded synthetic cross-spectral stereo set (VIS left, NIR right) from scikit-image's photographs.

The work is done by :mod:`cspsr_arch.prep.synthetic.build`;
the options are those of :func:`cspsr_arch.prep.commands.make_synthetic_rgbnir`
(``--help`` lists them).

Usage::

    python tools/make_synthetic_rgbnir.py --out datasets/Synthetic --scales 2 4 --seed 0
"""
import sys

from cspsr_arch.prep.commands import make_synthetic_rgbnir

if __name__ == '__main__':
    sys.exit(make_synthetic_rgbnir())
