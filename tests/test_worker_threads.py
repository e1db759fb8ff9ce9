"""tests/conftest.py splits the cores between pytest-xdist workers (``make test`` runs ``-n auto``)."""
import os
import subprocess
import sys

import torch
from conftest import THREADS, worker_threads

CORES = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)


def _worker(count: int, **extra) -> dict:
    return {'PYTEST_XDIST_WORKER': 'gw0', 'PYTEST_XDIST_WORKER_COUNT': str(count), **extra}


def test_threads_are_the_cores_over_the_workers():
    assert worker_threads({}) is None  # a serial run keeps torch's default
    assert worker_threads(_worker(1)) == CORES
    assert worker_threads(_worker(CORES)) == 1
    assert worker_threads(_worker(2 * CORES + 1)) == 1  # never 0
    assert worker_threads(_worker(2, OMP_NUM_THREADS='3')) is None  # an explicit setting wins


def test_this_process_and_its_subprocesses_use_the_share():
    if THREADS is None:  # serial run, or OMP_NUM_THREADS set by the caller: nothing was changed
        assert worker_threads() is None
        return
    assert os.environ['OMP_NUM_THREADS'] == str(THREADS) and torch.get_num_threads() == THREADS
    child = subprocess.run([sys.executable, '-c', 'import torch; print(torch.get_num_threads())'],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    assert int(child.stdout) == THREADS
