#!/usr/bin/env python
"""Convert a prepared cross-spectral split folder to one LMDB per stream folder, mirroring its tree
(<split>_lmdb/HR/VIS.lmdb, ...).

The work is done by :mod:`cspsr_arch.prep.lmdb`;
the options are those of :func:`cspsr_arch.prep.commands.create_lmdb`
(``--help`` lists them).

Usage::

    python tools/create_lmdb.py --input datasets/Synthetic/train \\
        [--output datasets/Synthetic/train_lmdb] [--compress-level 1] [--n-thread N]
"""
import sys

from cspsr_arch.prep.commands import create_lmdb

if __name__ == '__main__':
    sys.exit(create_lmdb())
