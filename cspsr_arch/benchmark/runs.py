"""The training runs of a benchmark and their option files.

Each run's options start from the project's option file of that model and scale (so a network is
defined in one place): ``options/train_<model>_x<s>.yml`` for the SR models (EDSR, RCAN, HAT and the
concatenation baseline, CSPSR; all on ``options/_base/``), ``options/train_disparity_x<s>.yml``
for the pre-training of CSPSR's learned cross-view matching, ``options/ablation/*.yml`` for the Table 4
variants. The benchmark then replaces the data (its own splits, in memory, horizontal flips off for every
model; one training split for every model, see ``tools/benchmark.py``), applies the preset's common budget (iterations, batch, patch, optimizer, schedule, pixel loss)
and network sizes, drops BasicSR's validation (the benchmark evaluates every model itself) and points
``path:pretrain_network_disp`` at the pre-trained disparity network of the same data and scale.
"""
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from cspsr_arch.benchmark.presets import EXTRA_MODELS, SIZE_SOURCE, Preset
from cspsr_arch.engine.options import check_keys, load_options, merge_options, signature_keys
from cspsr_arch.prep.split import META_INFO, dataset_roots

ABLATION_LABELS = {
    'baseline_x4': 'Baseline (VIS only)', 'w_nir_x4': 'w/ NIR (concatenated)', 'w_cvm_x4': 'w/ CVM (concatenated)',
    'wo_cvm_x4': 'w/o CVM', 'wo_csft_x4': 'w/o CSFT', 'wo_dyconv_x4': 'w/o DyConv', 'wo_cssc_x4': 'w/o L_CSSC',
    'full_x4': 'Full (CSPSR)'
}
"""Row labels of the paper's Table 4 for the files of ``options/ablation``."""


PROTOCOLS = ('bicubic', 'camera')
"""``bicubic``: clean bicubic LR inputs (the paper's); ``camera``: the LR VIS and NIR carry the camera
degradation of the preset's ``camera`` block (``cspsr_arch.data.degradation``), the ground truth is clean."""


@dataclass
class Run:
    """One training run.

    Attributes:
        name: Experiment name (``experiments/<name>``).
        model: Row name (``EDSR``, ``CSPSR``, ``CSPSR_given``, ``stereo``, ``Ablation_<stem>``).
        scale: Scale factor.
        opt: Complete options (no ``base``), what ``basicsr train`` gets.
        stereo: Name of the run whose disparity network this one loads, or None.
        protocol: One of :data:`PROTOCOLS`.
        seed: Index of the training seed (0, 1, ...).
    """

    name: str
    model: str
    scale: int
    opt: dict
    stereo: Optional[str] = None
    protocol: str = 'bicubic'
    seed: int = 0

    @property
    def checkpoint(self) -> str:
        """Where ``basicsr train`` leaves the final weights, relative to the benchmark folder."""
        return f'experiments/{self.name}/models/net_g_latest.pth'


def run_name(model: str, scale: int, protocol: str = 'bicubic', seed: int = 0) -> str:
    """``<model>_x<s>``, with ``_camera`` for the camera protocol and ``_seed<k>`` for seeds after the first."""
    return f'{model}_x{scale}' + ('' if protocol == 'bicubic' else f'_{protocol}') + (f'_seed{seed}' if seed else '')


def dataset_options(split: Path, scale: int, phase: str, gt_size: Optional[int] = None, batch: Optional[int] = None,
                    num_worker: int = 0, nir_gt: bool = True, disparity: bool = False,
                    degradation: Optional[dict] = None, nir_scale: int = 1) -> dict:
    """``PairedCrossSpectralDataset`` options for a split in the canonical layout.

    Args:
        split: Split folder (``.../train``).
        scale: Scale factor.
        phase: ``'train'`` or ``'test'``.
        gt_size: HR patch size (training).
        batch: Batch size (training).
        num_worker: Data-loader workers (training).
        nir_gt: Read the HR NIR (L_CSSC needs it).
        disparity: Read the left and right disparities (``cvm: given``, and the test split).
        degradation: The camera protocol's ``degradation`` block, or None (bicubic protocol).
        nir_scale: The NIR input at this multiple of the LR size (``CSPSR(nir_scale=...)``): ``HR/NIR`` when it is
            the scale, else ``LR_bicubic/X<scale / nir_scale>/NIR``.
    """
    roots = {name: str(path) for name, path in dataset_roots(split, scale).items()}
    if nir_scale != 1:
        roots['lq_nir'] = roots['gt_nir'] if nir_scale == scale else str(dataset_roots(split, scale // nir_scale)['lq_nir'])
    opt = {'name': f'{split.parent.name}_{split.name}', 'type': 'PairedCrossSpectralDataset',
           'dataroot_gt': roots['gt'], 'dataroot_lq': roots['lq'], 'dataroot_lq_nir': roots['lq_nir'],
           'meta_info_file': str(split / META_INFO), 'io_backend': {'type': 'disk'}}
    if nir_gt:
        opt['dataroot_gt_nir'] = roots['gt_nir']
    if disparity:
        opt.update(dataroot_disp=roots['disp'], dataroot_disp_r=roots['disp_r'])
    if degradation is not None:
        opt['degradation'] = dict(degradation)
    if nir_scale != 1:
        opt['nir_scale'] = nir_scale
    if phase == 'train':
        opt.update(cache_in_memory=True, gt_size=gt_size, use_hflip=False, use_vflip=True, num_worker_per_gpu=num_worker,
                   batch_size_per_gpu=batch, dataset_enlarge_ratio=100, prefetch_mode=None)
    return opt


def _common(opt: dict, name: str, preset: Preset, iters: int) -> dict:
    opt = dict(opt, name=name, num_gpu='auto')
    opt.pop('val', None)
    opt['path'] = {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None}
    opt['logger'] = {'print_freq': preset.print_freq, 'save_checkpoint_freq': max(1, iters // preset.checkpoints),
                     'use_tb_logger': False}
    return opt


def _max_disp(preset: Preset, scale: int, current: int) -> int:
    return current if preset.max_disp_hr is None else math.ceil(preset.max_disp_hr / scale)


def _sr_train_options(train: dict, preset: Preset) -> dict:
    """The option file's ``train`` section with the preset's common budget."""
    train = dict(train)
    iters = preset.iters or train['total_iter']
    train['total_iter'] = iters
    if preset.lr is not None:
        train['optim_g'] = {'type': 'Adam', 'lr': preset.lr, 'weight_decay': 0, 'betas': [0.9, 0.999]}
    if preset.cosine:
        train['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [iters], 'restart_weights': [1],
                              'eta_min': 1e-6}
    if preset.pixel_loss is not None:
        train['pixel_opt'] = {'type': preset.pixel_loss, 'loss_weight': 1.0, 'reduction': 'mean'}
    return train


@dataclass(frozen=True)
class Setting:
    """What differs between the runs of one model: protocol, seed and the validation split.

    Attributes:
        protocol: One of :data:`PROTOCOLS`.
        seed: Seed index (the option file's ``manual_seed`` plus this).
        degradation: The camera block (``camera`` protocol), or None.
        val_dir: Validation split scored every ``preset.val_every`` iterations, or None.
    """

    protocol: str = 'bicubic'
    seed: int = 0
    degradation: Optional[dict] = None
    val_dir: Optional[Path] = None


def stereo_run(options_dir: Path, train_dir: Path, scale: int, preset: Preset, setting: Setting = Setting()) -> Run:
    """Label-free pre-training of CSPSR's learned cross-view matching (``train_disparity_x<s>.yml``), on the
    LR inputs of the setting's protocol."""
    source = load_options(str(options_dir / f'train_disparity_x{scale}.yml'))
    train = dict(source['train'])
    iters = preset.stereo_iters or train['total_iter']
    train['total_iter'] = iters
    if train['scheduler']['type'] == 'CosineAnnealingRestartLR':
        train['scheduler'] = dict(train['scheduler'], periods=[iters], restart_weights=[1])
    src_train = source['datasets']['train']
    name = run_name('stereo', scale, setting.protocol)
    opt = _common(source, name, preset, iters)
    opt['network_g'] = dict(source['network_g'], max_disp=_max_disp(preset, scale, source['network_g']['max_disp']))
    opt['train'] = train
    opt['datasets'] = {'train': dataset_options(train_dir, scale, 'train',
                                                preset.stereo_gt_size or src_train['gt_size'],
                                                preset.stereo_batch or src_train['batch_size_per_gpu'],
                                                preset.num_worker, nir_gt=False, degradation=setting.degradation)}
    return Run(name, 'stereo', scale, opt, protocol=setting.protocol)


def check_network(network: dict, name: str) -> None:
    """Refuse network options that the registered arch does not take (a typo in a preset or ``--network``),
    with the option checker's message, before anything trains."""
    from basicsr.utils.registry import ARCH_REGISTRY
    keys = signature_keys(ARCH_REGISTRY.get(network['type']))
    check_keys(network, None if keys is None else keys | {'type'}, f'{name} (preset networks, --network) network_g')


def network_nir_scale(network: dict) -> int:
    """The multiple of the LR size at which a network takes its NIR (its ``nir_scale``: CSPSR and the guided
    comparison networks; 1 for the others)."""
    return int(network.get('nir_scale', 1))


def network_cvm(network: dict) -> str:
    """A network's cross-view matching mode (``learned``, ``given`` or ``none``): its ``cvm`` option, else the
    default of its class (CSPSR: ``learned``; the guided comparison networks: ``none``; no such option: none)."""
    import inspect

    from basicsr.utils.registry import ARCH_REGISTRY
    if 'cvm' in network:
        return network['cvm'] or 'none'  # BasicSR's --force_yml turns 'none' into None
    param = inspect.signature(ARCH_REGISTRY.get(network['type'])).parameters.get('cvm')
    return (param.default or 'none') if param is not None else 'none'


def _validation(opt: dict, preset: Preset, scale: int, setting: Setting, disparity: bool, nir_scale: int = 1) -> None:
    """Score the validation split every ``preset.val_every`` iterations (BasicSR's validation, PSNR only)."""
    if setting.val_dir is None:
        return
    val = dataset_options(setting.val_dir, scale, 'val', disparity=disparity, degradation=setting.degradation,
                          nir_scale=nir_scale)
    opt['datasets']['val'] = dict(val, name='validation')
    opt['val'] = {'val_freq': preset.val_every, 'save_img': False,
                  'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': scale}}}


def _sr_run(source: dict, name: str, model: str, train_dir: Path, scale: int, preset: Preset, network: dict,
            stereo: Optional[Run], setting: Setting = Setting()) -> Run:
    train = _sr_train_options(source['train'], preset)
    src_train = source['datasets']['train']
    gt_size = preset.gt_size or src_train['gt_size']
    if 'warp_window' in network:  # a learned alignment (CMSR, CSPSR nir_align), per window of the training patch
        network = dict(network, warp_window=gt_size)
    opt = _common(source, name, preset, train['total_iter'])
    opt['network_g'], opt['train'] = network, train
    opt['manual_seed'] = int(source.get('manual_seed') or 0) + setting.seed
    cvm = network_cvm(network)
    given, learned = cvm == 'given', cvm == 'learned'
    nir_scale = network_nir_scale(network)
    opt['datasets'] = {'train': dataset_options(train_dir, scale, 'train', gt_size,
                                                preset.batch or src_train['batch_size_per_gpu'], preset.num_worker,
                                                disparity=given, degradation=setting.degradation, nir_scale=nir_scale)}
    _validation(opt, preset, scale, setting, given, nir_scale)
    if learned:
        if stereo is None or stereo.opt['network_g']['max_disp'] != network.get('max_disp', 24):
            raise ValueError(f'{name}: the learned CVM needs a pre-trained disparity network of the same range.')
        opt['path']['pretrain_network_disp'] = stereo.checkpoint
    return Run(name, model, scale, opt, stereo.name if learned else None, setting.protocol, setting.seed)


def sr_run(options_dir: Path, model: str, train_dir: Path, scale: int, preset: Preset,
           stereo: Optional[Run] = None, setting: Setting = Setting()) -> Run:
    """A run of one SR model (``EDSR``, ``RCAN``, ``HAT``, ``ConcatNIR``, ``CSPSR``, or a row of
    :data:`~cspsr_arch.benchmark.presets.EXTRA_MODELS`: the CSPSR of the option file and the preset, with the
    ground-truth disparity (``_given``), with the NIR at the HR size (``_HRNIR``, ``nir_scale`` = scale), or both).

    Args:
        options_dir: The project's ``options`` folder.
        model: Row name.
        train_dir: Training split.
        scale: Scale factor.
        preset: Budget and sizes.
        stereo: The disparity pre-training run (CSPSR with the learned CVM).
        setting: Protocol, seed and validation split.
    """
    source_model = 'CSPSR' if model in EXTRA_MODELS else model
    source = load_options(str(options_dir / f'train_{source_model}_x{scale}.yml'))
    sizes = preset.networks.get(SIZE_SOURCE.get(model, source_model), {})
    network = merge_options(source['network_g'], sizes)
    if model in ('CSPSR_given', 'CSPSR_HRNIR_given'):
        network['cvm'] = 'given'
    if model in ('CSPSR_HRNIR', 'CSPSR_HRNIR_given'):
        network['nir_scale'] = scale
    if network_cvm(network) == 'learned':
        network['max_disp'] = _max_disp(preset, scale, network.get('max_disp', 24))
    name = run_name(model, scale, setting.protocol, setting.seed)
    check_network(network, name)
    return _sr_run(source, name, model, train_dir, scale, preset, network, stereo, setting)


def ablation_runs(options_dir: Path, train_dir: Path, preset: Preset, stereo: Run, cspsr: Run,
                  setting: Setting = Setting()) -> Dict[str, Run]:
    """The Table 4 variants of ``options/ablation`` (x4) with the preset's budget; ``full_x4`` is ``cspsr``
    itself when their options agree (the same network, loss and budget), else a run of its own.

    Returns:
        dict: file stem -> run.
    """
    runs = {}
    for path in sorted((options_dir / 'ablation').glob('*_x4.yml')):
        source = load_options(str(path))
        network = merge_options(source['network_g'], preset.networks.get('CSPSR', {}))
        if network_cvm(network) == 'learned':
            network['max_disp'] = _max_disp(preset, 4, network.get('max_disp', 24))
        name = f'Ablation_{path.stem}' + ('' if setting.protocol == 'bicubic' else f'_{setting.protocol}')
        run = _sr_run(source, name, f'Ablation_{path.stem}', train_dir, 4, preset, network, stereo, setting)
        same = {k: v for k, v in run.opt.items() if k != 'name'} == {k: v for k, v in cspsr.opt.items() if k != 'name'}
        runs[path.stem] = cspsr if same else run
    return runs


@dataclass
class Plan:
    """Every run of a benchmark and where its rows go.

    Attributes:
        runs: Runs in training order (each disparity pre-training before the runs that load it).
        table: Protocol -> scale -> SR model row -> its runs, one per seed.
        ablation: Ablation file stem -> run (x4, first protocol, first seed).
    """

    runs: List[Run]
    table: Dict[str, Dict[int, Dict[str, List[Run]]]]
    ablation: Dict[str, Run]

    def networks(self) -> Dict[int, Dict[str, List[Run]]]:
        """Scale -> row -> runs of every row under any protocol (the first protocol that has the row): the
        networks are the same under every protocol and seed, so their cost and options are read here."""
        merged: Dict[int, Dict[str, List[Run]]] = {}
        for by_scale in self.table.values():
            for scale, rows in by_scale.items():
                for row, seeded in rows.items():
                    merged.setdefault(scale, {}).setdefault(row, seeded)
        return merged


def plan(options_dir: Path, train_dir: Path, preset: Preset, models: List[str], ablations: bool,
         protocols: Sequence[str] = ('bicubic', ), seeds: int = 1, val_dir: Optional[Path] = None,
         model_seeds: Optional[Dict[str, int]] = None,
         protocol_models: Optional[Dict[str, Sequence[str]]] = None) -> Plan:
    """Every run of a benchmark: all models train on ``train_dir``.

    Args:
        options_dir: The project's ``options`` folder.
        train_dir: The training split.
        preset: Budget and sizes.
        models: SR model rows to train.
        ablations: Add the Table 4 variants (x4, first protocol, one seed).
        protocols: Protocols of :data:`PROTOCOLS`; every model is trained and tested under each.
        seeds: Training runs per model, protocol and scale (seeds 0 .. seeds-1); the disparity pre-training
            is shared by a protocol's seeds.
        val_dir: Validation split (learning curves), or None.
        model_seeds: Models trained another number of times than ``seeds`` (e.g. ``{'HAT': 1}``: the slowest
            VIS-only baselines once, where the table needs the spread of the NIR-guided models).
        protocol_models: Protocols whose table has only some of ``models`` (protocol -> those models, in the
            order of ``models``); the others train and test every model. A protocol's table must keep at least
            one row, and a model named here must be among ``models``.
    """
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    counts = {m: (model_seeds or {}).get(m, seeds) for m in models}
    if unknown or not protocols or min(counts.values(), default=seeds) < 1 or seeds < 1:
        raise ValueError(f'protocols must be among {PROTOCOLS} and seeds >= 1, got {list(protocols)}, {counts}.')
    extra = sorted(set(model_seeds or {}) - set(models))
    if extra:
        raise ValueError(f'seeds given for models that are not trained: {extra}; models: {models}.')
    for protocol, subset in (protocol_models or {}).items():
        stray = sorted(set(subset) - set(models))
        if protocol not in protocols or stray or not subset:
            raise ValueError(f'models of the {protocol!r} protocol must be some of {list(models)}, under one of '
                             f'{list(protocols)}; got {list(subset)}.')
    runs: Dict[str, Run] = {}
    table: Dict[str, Dict[int, Dict[str, List[Run]]]] = {}
    ablation: Dict[str, Run] = {}
    for protocol in protocols:
        degradation = dict(preset.camera) if protocol == 'camera' else None
        for scale in preset.scales:
            first = Setting(protocol, 0, degradation, val_dir)
            stereo = stereo_run(options_dir, train_dir, scale, preset, first)
            trained = [m for m in models if m in (protocol_models or {}).get(protocol, models)]
            rows: Dict[str, List[Run]] = {m: [] for m in trained}
            for seed in range(max(counts.values(), default=seeds)):
                setting = Setting(protocol, seed, degradation, val_dir)
                for m in [m for m in trained if seed < counts[m]]:
                    rows[m].append(sr_run(options_dir, m, train_dir, scale, preset, stereo, setting))
            table.setdefault(protocol, {})[scale] = rows
            group = [run for seeded in rows.values() for run in seeded]
            if ablations and scale == 4 and protocol == protocols[0]:
                cspsr = rows['CSPSR'][0] if 'CSPSR' in rows else sr_run(options_dir, 'CSPSR', train_dir, 4, preset,
                                                                       stereo, first)
                ablation = ablation_runs(options_dir, train_dir, preset, stereo, cspsr, first)
                group += list(ablation.values())
            if any(run.stereo == stereo.name for run in group):
                runs[stereo.name] = stereo
            runs.update((run.name, run) for run in group)
    return Plan(list(runs.values()), table, ablation)
