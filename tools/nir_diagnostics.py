#!/usr/bin/env python
"""Where does a trained network's NIR contribution go? CSFT gates, dynamic kernels and gradient shares over training.

Options: ``--help``; the command and its definitions live in :mod:`cspsr_arch.benchmark.nir_use`.
"""
import sys

from cspsr_arch.benchmark.nir_use import main

if __name__ == '__main__':
    sys.exit(main())
