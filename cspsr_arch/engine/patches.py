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

    from cspsr_arch.engine.options import load_options, plain
    copy_opt_file(opt_file, experiments_root)
    with open(opt_file, 'r') as f:
        has_base = 'base' in (yaml.load(f, Loader=ordered_yaml()[0]) or {})
    if has_base and get_dist_info()[0] == 0:
        stem = os.path.splitext(os.path.basename(opt_file))[0]
        with open(os.path.join(experiments_root, f'{stem}_resolved.yml'), 'w') as f:
            yaml.safe_dump(plain(load_options(opt_file)), f, sort_keys=False)


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
          "BasicSR copies the option file alone into experiments/<name>/; with `base` files that copy does not "
          "say what trained, so `<name>_resolved.yml` (bases merged) is written beside it.",
          lambda original, backend: copy_resolved_opt_file),
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
