#!/usr/bin/env python
"""Convert a downloaded RGB-NIR data set (rgbnir-stereo, nirscene, ranus, or a folder of pairs) to the
canonical cross-spectral layout of datasets/README.md.

The work is done by :mod:`cspsr_arch.prep.prepare`;
the options are those of :func:`cspsr_arch.prep.commands.prepare_data`
(``--help`` lists them).

Usage::

    python tools/prepare_data.py rgbnir-stereo --root /data/rgbnir_stereo --out datasets/RGBNIRStereo --scales 2 4
    python tools/prepare_data.py pairs --root my_pairs --out datasets/MyPairs --split train --scales 4
"""
import sys

from cspsr_arch.prep.commands import prepare_data

if __name__ == '__main__':
    sys.exit(prepare_data())
