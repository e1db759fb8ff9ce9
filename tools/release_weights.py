#!/usr/bin/env python
"""Release a benchmark's weights (weights/), write camera-protocol test inputs, draw the card's crop figures.

Usage::

    python tools/release_weights.py release --benchmark results/benchmark/release
    python tools/release_weights.py inputs --keys 0046 --out /tmp/country_lr
    python tools/release_weights.py figure --lr LR_rgb.png --sr EDSR=e.png CSPSR=c.png [--gt gt.png] --out crop.png

What each step does: :mod:`cspsr_arch.release.command`.
"""
import sys

from cspsr_arch.release.command import main

if __name__ == '__main__':
    sys.exit(main())
