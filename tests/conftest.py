"""Shared pytest set-up: split the cores between xdist workers, import cspsr_arch once (registration) and
expose the toy-data helpers.

``tests/`` is on ``sys.path`` through the ``pythonpath`` option of pytest.ini, so test modules in
sub-folders import ``toy_data`` and ``conftest`` by name.
"""
import os
from pathlib import Path
from typing import Optional

import pytest


def worker_threads(environ=os.environ) -> Optional[int]:
    """CPU threads for one pytest-xdist worker: the cores this process may run on over the number of workers.

    ``make test`` runs the suite in pytest-xdist workers (``-n auto``, one per core). Each worker's torch, and
    every subprocess a test starts (``basicsr train``, ``tools/benchmark.py``, torchrun ...), would otherwise
    start one OpenMP thread per core: on 2 cores, 2 workers x 2 threads oversubscribe the machine and each
    run is slower than with one thread.

    Args:
        environ: The environment; xdist sets ``PYTEST_XDIST_WORKER`` (``gw0``, ...) and
            ``PYTEST_XDIST_WORKER_COUNT`` in each worker before it loads this file.

    Returns:
        Optional[int]: At least 1; None outside an xdist worker (a serial run keeps torch's default) or when
        ``OMP_NUM_THREADS`` is already set (an explicit choice wins).
    """
    workers = environ.get('PYTEST_XDIST_WORKER_COUNT')
    if not environ.get('PYTEST_XDIST_WORKER') or not workers or environ.get('OMP_NUM_THREADS'):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    return max(1, cores // int(workers))


THREADS = worker_threads()
if THREADS is not None:
    # Set before torch is first imported (it reads OMP_NUM_THREADS then) and before the test modules copy
    # os.environ into the environments of their subprocesses; the whole worker process keeps it.
    os.environ['OMP_NUM_THREADS'] = str(THREADS)

import cspsr_arch  # noqa: E402,F401  (registers everything once for the whole session)

if THREADS is not None:
    import torch
    torch.set_num_threads(THREADS)  # in case a plugin imported torch before this file

ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = ROOT.parent / 'shared' / 'data' / 'real_rgbnir'
SHARED_COUNTRY = ROOT.parent / 'shared' / 'data' / 'nirscene_country'


@pytest.fixture
def toy_split(tmp_path):
    """A two-scene toy split with a constant 4-pixel disparity at tmp_path/toy/train."""
    from toy_data import make_toy_split
    split = tmp_path / 'toy' / 'train'
    scenes = make_toy_split(split)
    return split, scenes
