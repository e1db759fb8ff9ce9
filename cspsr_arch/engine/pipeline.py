"""``basicsr train`` / ``basicsr test``: BasicSR's own ``train_pipeline`` / ``test_pipeline`` with cspsr's
classes registered and its patches (:mod:`cspsr_arch.engine.patches`) in place.

``experiments/``, ``results/`` and ``tb_logger/`` go under the root path (default: the current directory).
"""
import argparse
import os
import sys
from typing import List, Optional


def dist_backend(args: List[str]) -> str:
    """Process-group backend for a ``train``/``test`` command line (see ``distributed.choose_backend``).

    Args:
        args (list[str]): Arguments after the sub-command (``-opt ...``); only ``-opt``, ``--launcher`` and
            ``--force_yml`` are read, before BasicSR parses them, because ``init_dist`` runs inside its option
            parser.
    """
    from cspsr_arch.engine.distributed import choose_backend
    from cspsr_arch.engine.options import load_options
    from cspsr_arch.engine.patches import apply_force_yml, force_yml_of
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    parser.add_argument('--launcher', default='none')
    known = parser.parse_known_args(args)[0]
    if known.launcher == 'none' or not known.opt:
        return 'gloo'  # not used
    return choose_backend(apply_force_yml(load_options(known.opt), force_yml_of(args)))  # as BasicSR will read it


def run(command: str, args: List[str], root_path: Optional[str] = None) -> None:
    """Run BasicSR's train or test pipeline with ``args`` as its command line.

    Args:
        command (str): ``'train'`` or ``'test'``.
        args (list[str]): Arguments after the sub-command (``-opt ...``); BasicSR parses ``sys.argv`` itself,
            so they are put there while the pipeline runs.
        root_path (str | None): Where experiments/, results/, tb_logger/ go. Default: current directory.
    """
    import cspsr_arch  # noqa: F401  (registers the arch, dataset, loss and model)
    from basicsr.test import test_pipeline
    from basicsr.train import train_pipeline

    from cspsr_arch.engine.distributed import shutdown
    from cspsr_arch.engine.patches import patched_basicsr
    root_path = os.path.abspath(root_path or os.getcwd())
    pipeline = train_pipeline if command == 'train' else test_pipeline
    saved_argv = sys.argv
    sys.argv = [f'basicsr {command}', *args]
    try:
        with patched_basicsr(dist_backend(args)):
            pipeline(root_path)
    finally:
        sys.argv = saved_argv
        shutdown()
