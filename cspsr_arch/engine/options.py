"""Option files: ``base`` inheritance, and strict checking (every key must be one that the code reads).

An option file may start with ``base: <file>`` (or a list of files), relative to itself: the base
files are loaded first (recursively) and the file's own keys are merged over them, mapping by mapping
(a value, list or ``~`` replaces what the base had). Options for one data set and protocol are then
written once and variants (ablations, baselines) only say what differs.

BasicSR silently ignores keys it does not know, so a misspelled ``lerning_rate`` or ``gt_szie`` trains
with defaults. :func:`check_options` runs on the parsed options before anything is built and raises a
:class:`~cspsr_arch.errors.CSPSRInputError` naming the key, its place and the accepted keys.
Constructor arguments of archs, losses, optimizers and schedulers are read from their signatures.

Keys of cspsr's own beyond BasicSR's are checked here too, e.g. ``train: compile: true`` (``CSPSRModel``
only): the training steps run through ``torch.compile`` (see :mod:`cspsr_arch.engine.compile`).
"""
import difflib
import inspect
import os
from typing import Callable, Iterable, Mapping, Optional, Tuple

import torch
import yaml
from basicsr.models import lr_scheduler
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY

from cspsr_arch.errors import CSPSRInputError

TOP_KEYS = {
    'name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'network_g', 'path', 'train', 'val', 'logger',
    'dist_params', 'find_unused_parameters',
    # added by basicsr.utils.options.parse_options / the pipelines
    'dist', 'rank', 'world_size', 'auto_resume', 'is_train', 'root_path'
}
PATH_KEYS = {
    'pretrain_network_g', 'param_key_g', 'strict_load_g', 'resume_state', 'experiments_root', 'results_root',
    'models', 'training_states', 'log', 'visualization', 'ignore_resume_networks',
    'pretrain_network_disp', 'param_key_disp', 'strict_load_disp'
}
TRAIN_KEYS = {
    'ema_decay', 'optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'pixel_opt', 'perceptual_opt', 'cssc_opt',
    'stereo_opt', 'attention_opt', 'freeze_disp', 'shift_augment', 'compile', 'amp'
}
LOSS_OPTS = ('pixel_opt', 'perceptual_opt', 'cssc_opt', 'stereo_opt', 'attention_opt')
VAL_KEYS = {'val_freq', 'save_img', 'suffix', 'pbar', 'metrics'}
METRIC_KEYS = {'type', 'crop_border', 'input_order', 'test_y_channel', 'better'}
LOGGER_KEYS = {'print_freq', 'save_checkpoint_freq', 'use_tb_logger', 'wandb'}
WANDB_KEYS = {'project', 'resume_id'}
DIST_KEYS = {'backend', 'port'}
LOADER_KEYS = {
    'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio', 'prefetch_mode', 'pin_memory',
    'persistent_workers', 'num_prefetch_queue'
}
IO_BACKEND_KEYS = {'type'}
OPTIMIZERS = {
    'Adam': torch.optim.Adam,
    'AdamW': torch.optim.AdamW,
    'Adamax': torch.optim.Adamax,
    'SGD': torch.optim.SGD,
    'ASGD': torch.optim.ASGD,
    'RMSprop': torch.optim.RMSprop,
    'Rprop': torch.optim.Rprop
}
SCHEDULERS = {
    'MultiStepLR': lr_scheduler.MultiStepRestartLR,
    'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
    'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR
}
DATAROOT_HINT = ('Prepare the data first: see datasets/README.md (tools/make_synthetic_rgbnir.py for the embedded '
                 'synthetic set, tools/create_lmdb.py for LMDBs), or point the option at your data '
                 '(--force_yml {option}=<path>).')


def merge_options(base: Mapping, override: Mapping) -> dict:
    """``override`` merged over ``base``: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_options(merged[key], value)
        else:
            merged[key] = value
    return merged



def plain(value):
    """``value`` with every mapping a ``dict`` and every list or tuple a ``list``, recursively.

    Options come from BasicSR's ``ordered_yaml`` loader as ``OrderedDict``s; ``yaml.safe_dump`` and JSON
    write (and compare) only plain containers.
    """
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value

def load_options(path: str, _chain: Tuple[str, ...] = ()) -> dict:
    """Load an option YAML file, resolving its ``base`` files (see the module docstring).

    Args:
        path (str): Option file.

    Returns:
        dict: The merged options, without ``base``.
    """
    from basicsr.utils.options import ordered_yaml
    path = os.path.abspath(path)
    if path in _chain:
        raise CSPSRInputError('Option files include each other in a loop: ' + ' -> '.join(_chain + (path, )))
    if not os.path.isfile(path):
        where = f' (base of {_chain[-1]})' if _chain else ''
        raise CSPSRInputError(f'Option file not found: {path}{where}.')
    with open(path, 'r') as f:
        try:
            opt = yaml.load(f, Loader=ordered_yaml()[0])
        except yaml.YAMLError as err:
            raise CSPSRInputError(f'{path} is not valid YAML: {err}') from None
    if not isinstance(opt, Mapping):
        raise CSPSRInputError(f'{path} must hold a mapping of options, got {type(opt).__name__}.')
    opt = dict(opt)
    bases = opt.pop('base', None)
    if bases is None:
        return opt
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        merged = merge_options(merged, load_options(os.path.join(os.path.dirname(path), str(base)), _chain + (path, )))
    return merge_options(merged, opt)


def signature_keys(func: Callable, skip: Iterable[str] = ('self', )) -> Optional[set]:
    """Named parameters of ``func`` (None when it takes ``**kwargs``: anything goes)."""
    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {name for name in params if name not in skip}


def check_keys(section: Mapping, allowed: Optional[set], where: str) -> None:
    """Raise if ``section`` has a key outside ``allowed`` (None: no restriction).

    Args:
        section (Mapping): Options at one place of the tree.
        allowed (set | None): Accepted keys.
        where (str): Place in the tree, for the message (e.g. ``'train:optim_g'``).
    """
    if allowed is None:
        return
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ''
            raise CSPSRInputError(f"Unknown option '{where}:{key}'.{hint} Accepted keys there: "
                                  f'{", ".join(sorted(allowed))}.')


def _registered(registry, type_name: str, where: str):
    if type_name not in registry:
        raise CSPSRInputError(f"Option '{where}:type' is {type_name!r}, which is not registered in BasicSR's "
                              f'{registry._name} registry.')
    return registry.get(type_name)


def _check_typed(section: Mapping, where: str, cls: Callable, skip: Iterable[str] = ('self', )) -> None:
    if not isinstance(section, Mapping) or 'type' not in section:
        raise CSPSRInputError(f"Option '{where}' must be a mapping with a 'type'.")
    keys = signature_keys(cls, skip)
    check_keys(section, None if keys is None else keys | {'type'}, where)


def check_datasets(opt: Mapping) -> None:
    """Check dataset sections: known keys for registered cross-spectral datasets, existing dataroots."""
    for phase, dataset_opt in opt['datasets'].items():
        where = f'datasets:{phase}'
        dataset_cls = _registered(DATASET_REGISTRY, dataset_opt.get('type', ''), where)
        own_keys = getattr(inspect.getmodule(dataset_cls), 'OPTION_KEYS', None)
        if own_keys is not None:
            check_keys(dataset_opt, set(own_keys) | LOADER_KEYS, where)
            check_keys(dataset_opt.get('io_backend', {}), IO_BACKEND_KEYS, f'{where}:io_backend')
        for key, value in dataset_opt.items():
            if key.startswith('dataroot') and value is not None and not os.path.exists(value):
                raise CSPSRInputError(f"Data not found: '{where}:{key}' is {value}, which does not exist (relative paths "
                                      f'start at the current directory, {os.getcwd()}). '
                                      + DATAROOT_HINT.format(option=f'{where}:{key}'))


def check_options(opt: Mapping) -> None:
    """Validate parsed BasicSR options (see the module docstring). Raises ``CSPSRInputError``."""
    check_keys(opt, TOP_KEYS, 'opt')
    check_keys(opt.get('path', {}), PATH_KEYS, 'path')
    if 'network_g' in opt:
        _check_typed(opt['network_g'], 'network_g', _registered(ARCH_REGISTRY, opt['network_g'].get('type', ''),
                                                                 'network_g'))
        upscale = opt['network_g'].get('upscale')
        if upscale is not None and opt.get('scale') is not None and upscale != opt['scale']:
            raise CSPSRInputError(f"network_g:upscale ({upscale}) differs from scale ({opt['scale']}); make them equal.")
    if opt.get('is_train') and 'train' in opt:
        train = opt['train']
        check_keys(train, TRAIN_KEYS, 'train')
        if 'compile' in train:
            if not isinstance(train['compile'], bool):
                raise CSPSRInputError(f"train:compile must be true or false, got {train['compile']!r}.")
            if train['compile'] and opt.get('model_type') != 'CSPSRModel':
                raise CSPSRInputError(f"train:compile is read by CSPSRModel only; {opt.get('model_type')} would train "
                                      'in eager mode. Remove the option.')
        for key in LOSS_OPTS:
            if train.get(key):
                _check_typed(train[key], f'train:{key}', _registered(LOSS_REGISTRY, train[key].get('type', ''),
                                                                      f'train:{key}'))
        optim = train.get('optim_g', {})
        if optim.get('type') not in OPTIMIZERS:
            raise CSPSRInputError(f"train:optim_g:type must be one of {', '.join(OPTIMIZERS)}, got {optim.get('type')!r}.")
        _check_typed(optim, 'train:optim_g', OPTIMIZERS[optim['type']], skip=('self', 'params'))
        sched = train.get('scheduler', {})
        if sched.get('type') not in SCHEDULERS:
            raise CSPSRInputError(f"train:scheduler:type must be one of {', '.join(SCHEDULERS)}, "
                                  f"got {sched.get('type')!r}.")
        _check_typed(sched, 'train:scheduler', SCHEDULERS[sched['type']], skip=('self', 'optimizer'))
    if opt.get('val'):
        check_keys(opt['val'], VAL_KEYS, 'val')
        for name, metric in (opt['val'].get('metrics') or {}).items():
            where = f'val:metrics:{name}'
            func = _registered(METRIC_REGISTRY, metric.get('type', ''), f'{where}')
            keys = signature_keys(func, skip=('img', 'img2', 'disp', 'disp_gt', 'valid'))
            # BasicSR's own metrics take **kwargs: for those, the keys BasicSR reads
            check_keys(metric, METRIC_KEYS if keys is None else keys | {'type', 'better'}, where)
    check_keys(opt.get('logger') or {}, LOGGER_KEYS, 'logger')
    check_keys((opt.get('logger') or {}).get('wandb') or {}, WANDB_KEYS, 'logger:wandb')
    check_keys(opt.get('dist_params') or {}, DIST_KEYS, 'dist_params')
    check_datasets(opt)
