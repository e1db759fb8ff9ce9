"""The ``basicsr`` console script: ``basicsr train|test|infer -opt ...``.

``train`` and ``test`` register cspsr's classes (``import cspsr_arch``) and run BasicSR's own
``train_pipeline`` / ``test_pipeline`` with ``experiments/``, ``results/`` and ``tb_logger/`` under the
current working directory. Some BasicSR functions are replaced while the pipeline runs (BasicSR itself
is not changed): ``parse_options`` resolves ``base`` option files and is followed by a strict check of
the option keys and data paths (:mod:`cspsr_arch.engine.options`); ``load_resume_state`` works on CPU
(:mod:`cspsr_arch.engine.resume`); ``init_dist`` and ``model_to_device`` pick the ``gloo`` backend and
CPU DDP when there is no GPU (:mod:`cspsr_arch.engine.distributed`). ``infer`` super-resolves pairs of any
size with a trained model (:mod:`cspsr_arch.infer.command`).
"""
import argparse
import os
import sys
from contextlib import contextmanager
from typing import Iterator, List, Optional

import yaml

from cspsr_arch.engine.checkpoint import CheckpointSaveError, TrainingDiverged
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.infer.command import add_infer_arguments

DESCRIPTION = """BasicSR with the cspsr plugin (CSPSR: NIR-guided super-resolution).

sub-commands:
  train   train a model:  basicsr train -opt options/train_CSPSR_x4.yml [--auto_resume] [--debug]
                                        [--force_yml k=v ...] [--launcher none|pytorch|slurm]
          experiments/<name>/ (models, training states, log) and tb_logger/ go under the current directory.
          Several processes: torchrun --nproc_per_node=N -m cspsr_arch train -opt ... --launcher pytorch
  test    evaluate a model: basicsr test -opt options/test_CSPSR_x4.yml
          results/<name>/ (metrics log, images) goes under the current directory.
  infer   super-resolve pairs of any size: basicsr infer -opt <options> --model <net_g.pth>
                                        --vis <file|folder> --nir <file|folder> --out <folder> [--tile 256]
"""


def _add_basicsr_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``basicsr.utils.options.parse_options`` (it parses ``sys.argv`` again itself)."""
    parser.add_argument('-opt', required=True, help='path to the option YAML file')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true', help='resume from the newest training state')
    parser.add_argument('--debug', action='store_true', help='debug mode (name gets a debug_ prefix)')
    parser.add_argument('--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--force_yml', nargs='+', default=None, metavar='KEY=VALUE',
                        help='override options, e.g. train:total_iter=1000 datasets:train:batch_size_per_gpu=8')


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of the ``basicsr`` command."""
    parser = argparse.ArgumentParser(prog='basicsr', description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', metavar='{train,test,infer}')
    sub.required = True
    _add_basicsr_arguments(sub.add_parser('train', help='train a model with BasicSR\'s train_pipeline'))
    _add_basicsr_arguments(sub.add_parser('test', help='evaluate a model with BasicSR\'s test_pipeline'))
    add_infer_arguments(sub.add_parser('infer', help='super-resolve VIS/NIR pairs of any size with a trained model'))
    return parser


def checked_parse_options(root_path: str, is_train: bool = True):
    """``basicsr.utils.options.parse_options`` followed by :func:`cspsr_arch.engine.options.check_options`."""
    from basicsr.utils.options import parse_options

    from cspsr_arch.engine.options import check_options
    opt, args = parse_options(root_path, is_train=is_train)
    if not is_train:
        from cspsr_arch.engine.absent_test_sets import drop_absent_test_sets
        drop_absent_test_sets(opt)  # one line per test set that is not there; an error if none is
    check_options(opt)
    return opt, args


def yaml_load_with_base(f: str):
    """``basicsr.utils.options.yaml_load`` that resolves ``base`` files (:func:`cspsr_arch.engine.options.load_options`)."""
    from basicsr.utils.options import ordered_yaml

    from cspsr_arch.engine.options import load_options
    if os.path.isfile(f) or f.endswith(('.yml', '.yaml')):
        return load_options(f)
    return yaml.load(f, Loader=ordered_yaml()[0])


def copy_resolved_opt_file(opt_file: str, experiments_root: str) -> None:
    """BasicSR's ``copy_opt_file``, plus ``<name>_resolved.yml`` (bases merged) when the file has a ``base``."""
    from basicsr.utils.dist_util import get_dist_info
    from basicsr.utils.options import copy_opt_file, ordered_yaml

    from cspsr_arch.engine.options import load_options
    copy_opt_file(opt_file, experiments_root)
    with open(opt_file, 'r') as f:
        has_base = 'base' in (yaml.load(f, Loader=ordered_yaml()[0]) or {})
    if has_base and get_dist_info()[0] == 0:
        stem = os.path.splitext(os.path.basename(opt_file))[0]
        with open(os.path.join(experiments_root, f'{stem}_resolved.yml'), 'w') as f:
            yaml.safe_dump(_plain(load_options(opt_file)), f, sort_keys=False)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, list) else value


def dist_backend(args: List[str]) -> str:
    """Process-group backend for a ``train``/``test`` command line (see ``distributed.choose_backend``)."""
    from cspsr_arch.engine.distributed import choose_backend
    from cspsr_arch.engine.options import load_options
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    parser.add_argument('--launcher', default='none')
    known = parser.parse_known_args(args)[0]
    if known.launcher == 'none' or not known.opt:
        return 'gloo'  # not used
    return choose_backend(load_options(known.opt))


@contextmanager
def patched_basicsr(backend: str = 'gloo') -> Iterator[None]:
    """Swap in the checked option parser (with ``base`` files), the CPU-safe resume loader and the
    device-agnostic distributed set-up while a pipeline runs.

    Args:
        backend (str): Process-group backend for ``--launcher pytorch|slurm``.
    """
    import basicsr.models.base_model
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options

    from cspsr_arch.engine.distributed import make_init_dist, make_model_to_device
    from cspsr_arch.engine.resume import load_resume_state
    base_model = basicsr.models.base_model.BaseModel
    patches = [(basicsr.train, 'parse_options', checked_parse_options),
               (basicsr.test, 'parse_options', checked_parse_options),
               (basicsr.train, 'load_resume_state', load_resume_state),
               (basicsr.train, 'copy_opt_file', copy_resolved_opt_file),
               (basicsr.utils.options, 'yaml_load', yaml_load_with_base),
               (basicsr.utils.options, 'init_dist', make_init_dist(backend)),
               (base_model, 'model_to_device', make_model_to_device(base_model.model_to_device))]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    for module, name, value in patches:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def run(command: str, args: List[str], root_path: Optional[str] = None) -> None:
    """Run BasicSR's train or test pipeline with ``args`` as its command line.

    Args:
        command (str): ``'train'`` or ``'test'``.
        args (list[str]): Arguments after the sub-command (``-opt ...``).
        root_path (str | None): Where experiments/, results/, tb_logger/ go. Default: current directory.
    """
    import cspsr_arch  # noqa: F401  (registers the arch, dataset, loss and model)
    from basicsr.test import test_pipeline
    from basicsr.train import train_pipeline

    from cspsr_arch.engine.distributed import shutdown
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


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``basicsr`` console script and of ``python -m cspsr_arch``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)  # validates the command line and answers --help
    try:
        if args.command == 'infer':
            from cspsr_arch.infer.command import run_infer
            return run_infer(args)
        run(argv[0], argv[1:])
    except CSPSRInputError as err:
        print(f'basicsr {argv[0]}: error: {err}', file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f'basicsr {argv[0]}: error: {err}', file=sys.stderr)
        return 3
    except CheckpointSaveError as err:
        print(f'basicsr {argv[0]}: error: {err}', file=sys.stderr)
        return 4
    return 0


if __name__ == '__main__':
    sys.exit(main())
