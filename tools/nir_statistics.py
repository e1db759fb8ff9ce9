#!/usr/bin/env python
"""How much like real NIR is a data set's NIR? Statistics of registered VIS/NIR pairs, one row per data set.

Options: ``--help``; the command and its definitions live in :mod:`cspsr_arch.benchmark.nir_realism`.
"""
import sys

from cspsr_arch.benchmark.nir_realism import main

if __name__ == '__main__':
    sys.exit(main())
