"""Every BasicSR function cspsr replaces, in one list (:data:`PATCHES`), with why.

BasicSR itself is not changed: :func:`patched_basicsr` swaps these attributes in while ``basicsr train``
or ``basicsr test`` runs a pipeline (:func:`cspsr_arch.engine.pipeline.run`) and puts the originals back
afterwards. Each entry says what BasicSR does and what goes wrong with it.

Not patches, and so not listed: cspsr's own models override methods of their BasicSR base class in the
ordinary way (``AtomicCheckpointMixin.save_network`` / ``save_training_state`` in
:mod:`cspsr_arch.engine.checkpoint`: atomic, finite checkpoints; ``CSPSRModel.model_ema``: also averages
buffers).
"""
import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple, Tuple

import yaml


class Patch(NamedTuple):
    """One BasicSR attribute replaced while a pipeline runs.

    Args:
        module: Dotted name of the module (or ``module:Class``) that holds the attribute.
        name: The attribute.
        why: BasicSR's behaviour, and the symptom that the replacement removes.
        make: Builds the replacement from the original and the process-group backend.
    """
    module: str
    name: str
    why: str
    make: Callable[[Any, str], Any]


def checked_parse_options(root_path: str, is_train: bool = True):
    """``basicsr.utils.options.parse_options`` followed by :func:`cspsr_arch.engine.options.check_options`
    (and, for ``basicsr test``, :func:`~cspsr_arch.engine.absent_test_sets.drop_absent_test_sets`)."""
    from basicsr.utils.options import parse_options

    from cspsr_arch.engine.options import check_options
    opt, args = parse_options(root_path, is_train=is_train)
    if not is_train:
        from cspsr_arch.engine.absent_test_sets import drop_absent_test_sets, drop_training_sets
        drop_training_sets(opt)  # the options of a training run: its validation set is tested
        if opt.get('val'):
            opt['val'].setdefault('suffix', None)  # BasicSR's test reads it; training options leave it out
        drop_absent_test_sets(opt)  # one line per test set that is not there; an error if none is
    check_options(opt)
    cap_workers(opt)
    return opt, args


def cap_workers(opt: dict, cores: int = 0) -> None:
    """Lower ``num_worker_per_gpu`` of each data set to the cores this process may use, with one line each: more
    data-loader processes than cores only compete with the training (BasicSR warns, then starts them all).

    Args:
        opt: Parsed options (changed in place).
        cores: Cores to allow (0: those of this process's CPU affinity).
    """
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1))
    for name, dataset in (opt.get('datasets') or {}).items():
        workers = dataset.get('num_worker_per_gpu')
        if isinstance(workers, int) and workers > cores:
            dataset['num_worker_per_gpu'] = cores
            print(f'basicsr: datasets:{name}:num_worker_per_gpu {workers} lowered to {cores}, the cores available.',
                  flush=True)


def yaml_load_with_base(f: str):
    """``basicsr.utils.options.yaml_load`` that resolves ``base`` files (:func:`cspsr_arch.engine.options.load_options`)."""
    from basicsr.utils.options import ordered_yaml

    from cspsr_arch.engine.options import load_options
    if os.path.isfile(f) or f.endswith(('.yml', '.yaml')):
        return load_options(f)
    return yaml.load(f, Loader=ordered_yaml()[0])


def apply_force_yml(opt: dict, entries) -> dict:
    """``opt`` with ``--force_yml`` entries (``a:b:c=value``) applied as BasicSR's ``parse_options`` applies them
    (the value through its ``_postprocess_yml_value``: numbers, booleans, None, lists).

    Args:
        opt: Options (changed in place and returned).
        entries: ``KEY:KEY=VALUE`` strings, or None.
    """
    from basicsr.utils.options import _postprocess_yml_value
    for entry in entries or ():
        keys, _, value = entry.partition('=')
        *path, last = [k.strip() for k in keys.split(':')]
        node = opt
        for key in path:
            node = node.setdefault(key, {})
        node[last] = _postprocess_yml_value(value.strip())
    return opt


def force_yml_of(argv) -> list:
    """The ``--force_yml`` entries of a ``basicsr train`` command line (what BasicSR's parser reads)."""
    entries, taking = [], False
    for arg in argv:
        if arg == '--force_yml':
            taking = True
        elif arg.startswith('-') and not arg[1:2].isdigit():
            taking = False
        elif taking:
            entries.append(arg)
    return entries


def copy_effective_opt_file(opt_file: str, experiments_root: str) -> None:
    """Write the options as they trained into ``experiments/<name>/<file>.yml``, where BasicSR's ``copy_opt_file``
    copies the file as it is: ``base`` files merged and ``--force_yml`` applied, so the copy builds the same
    network and data with ``basicsr infer``, ``basicsr test`` or ``basicsr train`` from any folder. A header
    names the source file and the command."""
    from basicsr.utils.dist_util import get_dist_info

    from cspsr_arch.engine.options import load_options, plain
    if get_dist_info()[0] != 0:
        return
    opt = apply_force_yml(plain(load_options(opt_file)), force_yml_of(sys.argv[1:]))
    header = (f'# Options as trained (generated {time.asctime()}): {opt_file} with its base files merged and the '
              f'--force_yml changes applied.\n# Command: {" ".join(sys.argv)}\n')
    with open(os.path.join(experiments_root, os.path.basename(opt_file)), 'w') as f:
        f.write(header + yaml.safe_dump(opt, sort_keys=False))


def _progress_logger() -> Callable:
    from cspsr_arch.engine.progress import ProgressLogger
    return ProgressLogger


def _resume(original: Any, backend: str) -> Callable:
    from cspsr_arch.engine.resume import load_resume_state
    return load_resume_state


def _init_dist(original: Any, backend: str) -> Callable:
    from cspsr_arch.engine.distributed import make_init_dist
    return make_init_dist(backend)


def _model_to_device(original: Callable, backend: str) -> Callable:
    from cspsr_arch.engine.distributed import make_model_to_device
    return make_model_to_device(original)


PATCHES: Tuple[Patch, ...] = (
    Patch('basicsr.train', 'parse_options',
          "BasicSR ignores option keys it does not know, so a misspelled key trains with defaults, and a missing "
          "dataroot fails deep in a data loader: the keys and data paths are checked first (engine/options.py).",
          lambda original, backend: checked_parse_options),
    Patch('basicsr.test', 'parse_options',
          "The same check for `basicsr test`, after dropping the test sets none of whose data exists (one line "
          "each): BasicSR fails on the first absent set, though users rarely have all (engine/absent_test_sets.py).",
          lambda original, backend: checked_parse_options),
    Patch('basicsr.utils.options', 'yaml_load',
          "BasicSR reads one YAML file; cspsr's option files inherit from `base` files, which it would pass "
          "on unresolved (a `base` key and missing sections).",
          lambda original, backend: yaml_load_with_base),
    Patch('basicsr.train', 'copy_opt_file',
          "BasicSR copies the option file alone into experiments/<name>/: with `base` files the copy cannot be "
          "loaded from there, and --force_yml changes are not in it, so it does not say what trained. The copy "
          "is written with the bases merged and the changes applied (usable by infer, test and train).",
          lambda original, backend: copy_effective_opt_file),
    Patch('basicsr.train', 'MessageLogger',
          "BasicSR's log line gives seconds per iteration and an ETA of `-1 day, 23:59:59` at the last iteration: "
          "the line gives the iteration out of the total, it/s and an ETA that never goes negative "
          "(engine/progress.py).",
          lambda original, backend: _progress_logger()),
    Patch('basicsr.train', 'load_resume_state',
          "BasicSR maps the state to torch.cuda.current_device() (fails without a GPU), looks in ./experiments "
          "whatever experiments_root says, and resumes from a truncated newest state (engine/resume.py).",
          _resume),
    Patch('basicsr.utils.options', 'init_dist',
          "BasicSR hard-codes the nccl backend and torch.cuda.set_device, so --launcher pytorch|slurm fails on "
          "CPUs; the backend follows dist_params:backend or the hardware (engine/distributed.py).",
          _init_dist),
    Patch('basicsr.models.base_model:BaseModel', 'model_to_device',
          "BasicSR wraps networks in DistributedDataParallel(device_ids=[torch.cuda.current_device()]), which "
          "fails on CPUs: there DDP gets no device ids (engine/distributed.py).",
          _model_to_device),
)
"""What :func:`patched_basicsr` replaces, in order."""


def _owner(dotted: str) -> Any:
    """The module, or ``module:Class``, that a :class:`Patch` names."""
    import importlib
    module_name, _, class_name = dotted.partition(':')
    owner = importlib.import_module(module_name)
    return getattr(owner, class_name) if class_name else owner


@contextmanager
def patched_basicsr(backend: str = 'gloo') -> Iterator[None]:
    """Swap in every replacement of :data:`PATCHES` while a pipeline runs; restore the originals after.

    Args:
        backend (str): Process-group backend for ``--launcher pytorch|slurm``
            (:func:`cspsr_arch.engine.distributed.choose_backend`).
    """
    owners = [_owner(patch.module) for patch in PATCHES]
    saved = [(owner, patch.name, getattr(owner, patch.name)) for owner, patch in zip(owners, PATCHES)]
    replacements = [patch.make(original, backend) for (_, _, original), patch in zip(saved, PATCHES)]
    for (owner, name, _), value in zip(saved, replacements):
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
