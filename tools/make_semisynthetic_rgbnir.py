#!/usr/bin/env python
"""Build a semi-synthetic cross-spectral stereo set from real, registered VIS/NIR pairs: real spectra,
known geometry.

The work is done by :mod:`cspsr_arch.prep.semisynthetic`;
the options are those of :func:`cspsr_arch.prep.commands.make_semisynthetic_rgbnir`
(``--help`` lists them).

Usage::

    python tools/make_semisynthetic_rgbnir.py --input ../shared/data/real_rgbnir --out datasets/SemiSynthetic \\
        --scales 2 4 --misaligned skip --test-scenes scene_tree
"""
import sys

from cspsr_arch.prep.commands import make_semisynthetic_rgbnir

if __name__ == '__main__':
    sys.exit(make_semisynthetic_rgbnir())
