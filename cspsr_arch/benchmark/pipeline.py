"""The benchmark pipeline behind ``tools/benchmark.py``: data, training, evaluation, cost and report.

Steps (each one is skipped when an earlier run of the same benchmark finished it, so an interrupted
benchmark resumes where it stopped):

1. **Data** under ``<out>/<name>/data`` (:mod:`cspsr_arch.benchmark.data`): the synthetic cross-view set
   (``cspsr_arch.prep.synthetic``), the semi-synthetic sets made from the real RGB-NIR pairs of ``--country``
   (the EPFL country pairs, the main real test set, and on request its registered test split) and ``--real``
   (:mod:`cspsr_arch.prep.semisynthetic`; an absent folder leaves its set out, and the report says so). The
   preset's validation scenes are held out of the training splits.
2. **Training** with ``basicsr train`` (BasicSR's pipeline, in this process) of every model at every scale and
   under every protocol (``bicubic``, ``camera``), ``--seeds`` times each, on one training split, the union of
   the data sets' training splits (``data/train``, hard links), for the same budget
   (``cspsr_arch.benchmark.presets``): the pre-training of CSPSR's learned cross-view matching, then EDSR, RCAN,
   HAT (VIS only), the concatenation baseline, CSPSR, and (if the preset says so, or ``--models`` names them)
   CSPSR with the ground-truth disparity as a reference row and CSPSR given the NIR at the HR size; ``--ablations`` adds the paper's Table 4 variants (x4). The validation split
   (``data/val``) is scored every ``val_every`` iterations. Option files of every run: ``<out>/<name>/options``;
   logs: ``<out>/<name>/logs``.
3. **Evaluation** of each model and of bicubic interpolation on each data set's test split under each protocol
   (PSNR/SSIM, RGB and Y, border = scale; ``cspsr_arch.benchmark.results``): means over seeds, paired per-image
   differences, NIR-zeroed and NIR-swapped rows; outputs in ``<out>/<name>/images``.
4. **Cost** of each network as trained: parameters, GFLOPs on a 582x429 HR frame, CPU (and GPU) latency in
   fp32 and in half precision where the hardware has it (as ``basicsr infer --half`` runs), peak memory (:mod:`cspsr_arch.benchmark.profile`); training iterations per second of CSPSR and EDSR at the preset's
   batch and patch size (``cspsr_arch.benchmark.throughput``), eager, and compiled with ``--compile``
   (which also evaluates through ``torch.compile``).
5. **Report**: ``<out>/<name>/report.md`` and ``report.json`` (Table 1 per protocol, Table 4 analogs, cost,
   targets), ``<out>/<name>/figures/<protocol>_<data set>_x<s>.png`` (the same crop from bicubic / EDSR / RCAN /
   HAT / CSPSR / ground truth with the crop's PSNR under each) and ``figures/learning_curves.png``.
"""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Dict, Optional, Sequence

from cspsr_arch.benchmark.data import DEFAULT_DATASETS, combine_train_splits, prepare_data
from cspsr_arch.benchmark.paths import ROOT
from cspsr_arch.engine.options import plain
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.split import META_INFO

FRAME = (429, 582)  # HR height, width of the cost figures (an RGB-NIR stereo frame)
DESCRIPTIONS = {
    'EDSR': 'VIS only; BasicSR\'s EDSR.',
    'RCAN': 'VIS only; BasicSR\'s RCAN.',
    'HAT': 'VIS only; the HAT of the spandrel package (cspsr_arch/archs/hat_arch.py).',
    'ConcatNIR': 'the VIS image with the unaligned right-view NIR (and its validity mask) stacked as input channels '
                 'of one branch: CSPSR(branches=concat, cvm=none), no NIR branch, no DMF, no L_CSSC.',
    'CSPSR': 'dual branch with DMF fusion; learned cross-view matching (pre-trained without labels, then fine-tuned); '
             'loss + 0.1 L_CSSC.',
    'CSPSR_HRNIR': 'CSPSR given the right-view NIR at the HR size (nir_scale = scale: warped at its own resolution, '
                   'then pixel-unshuffled onto the LR grid): rigs whose NIR camera has the output resolution, and '
                   'an upper bound of what a NIR image can give.',
    'CSPSR_HRNIR_align': 'CSPSR_HRNIR with CMSR\'s learned alignment (affine, CPAB and thin-plate maps predicted per '
                         'pair, from the identity) moving the cross-view-matched HR NIR onto the upscaled VIS before '
                         'the NIR branch (nir_align, one map per training-patch-sized window).',
    'CSPSR_HRNIR_path': 'CSPSR_HRNIR with CMSR\'s guide branch (four small convolutions at the output size, '
                        'starting at zero) from the matched HR NIR straight to the VIS output (nir_path).',
    'CSPSR_additive': 'CSPSR whose DMF modules keep a VIS residual block of their own and add the fused NIR features '
                      'to it times a per-channel scale that starts at zero (vis_path additive, NAFSSR\'s form): it '
                      'starts as the VIS-only network; sized to CSPSR\'s parameters.',
    'CSPSR_vis_block': 'the additive variant without its scale (vis_path residual_block): the fused NIR features '
                       'added to the VIS residual block\'s output as they are, from the first step; its ablation.',
    'PASSR': 'stereo SR (Wang et al., CVPR 2019): parallax attention between the LR VIS (left view) and the LR NIR '
             '(right view); its attention losses as its paper trains it.',
    'NAFSSR': 'stereo SR (Chu et al., CVPRW 2022): NAFNet blocks on both views with stereo cross-attention, the LR '
              'NIR as the right view.',
    'MASASR': 'reference-based SR (Lu et al., CVPR 2021): the bicubic-upscaled right-view NIR as the reference, '
              'matched coarse to fine (cvm none: the NIR as given; learned: aligned by the learned CVM first).',
    'CMSR': 'multi-modal SR (Shacht et al., CVPR 2021): guided by the bicubic-upscaled right-view NIR, aligned by '
            'its own learned deformation (after the learned CVM with cvm learned).',
    'CMSR_HRNIR': 'CMSR guided by the HR NIR (the CSPSR paper\'s upper bound row).',
    'SMSR': 'VIS only (Wang et al., CVPR 2021): sparse spatial and channel masks, hard at test time.',
    'NLSN': 'VIS only (Mei et al., CVPR 2021): EDSR with non-local sparse attention (LSH buckets).',
    'ENLCN': 'VIS only (Xia et al., AAAI 2022): EDSR with efficient non-local contrastive attention.',
    'ENLCN_NIR': 'ENLCN with the unaligned LR right-view NIR as a fourth input channel (the CSPSR paper\'s Table 3 '
                 'row "ENLCN w/ NIR").',
    'CSPSR_HRNIR_given': 'CSPSR given the right-view NIR at the HR size and warping it by the data set\'s ground-truth '
                         'disparity: what an HR NIR can give when the two views are matched exactly (an oracle).',
    'CSPSR_given': 'CSPSR warping the NIR by the data set\'s ground-truth disparity: an oracle reference row, not a '
                   'method (real rigs have no such disparity).',
}
HIDDEN_KEYS = ('type', 'upscale', 'num_in_ch', 'num_out_ch', 'num_nir_ch', 'rgb_mean', 'img_range')


def training_fingerprint(train_dir: Path, val_dir: Optional[Path], scales: Sequence[int]) -> str:
    """SHA-256 over the contents of the training and validation splits, what a finished run is checked against:
    a changed test split (more test scenes) keeps the trained models, a changed training image retrains them.

    Args:
        train_dir: The combined training split.
        val_dir: The validation split, or None.
        scales: Scales whose LR folders count.
    """
    import hashlib

    from cspsr_arch.benchmark.evaluation import split_fingerprint
    digest = hashlib.sha256()
    for split in (train_dir, val_dir):
        for scale in scales if split is not None else ():
            digest.update(split_fingerprint(split, scale).encode())
    return digest.hexdigest()


def _cost(net: dict, scale: int, runs: int, cache: Path, what: str) -> dict:
    """Cost figures of one network on the benchmark frame (cached in ``cache`` for these options)."""
    import torch

    from cspsr_arch.archs.precision import half_dtype
    from cspsr_arch.benchmark.profile import cpu_peak_memory, profile
    if cache.is_file() and json.loads(cache.read_text())['network_g'] == net:
        return json.loads(cache.read_text())['figures']
    print(f'[benchmark] cost of {what}', flush=True)
    lr_hw = (FRAME[0] // scale, FRAME[1] // scale)
    cpu = profile(net, lr_hw, runs, torch.device('cpu'))
    figures = {'params_M': cpu['params_M'], 'gflops': cpu['gflops'], 'latency_cpu_s': cpu['latency_s'],
               'peak_mem_MB': cpu_peak_memory(net, lr_hw)}
    try:
        dtype = half_dtype(torch.device('cpu'))
    except CSPSRInputError:
        figures['latency_cpu_half_s'] = None  # no bf16 instructions: emulated half precision is not measured
    else:
        figures['latency_cpu_half_s'] = profile(net, lr_hw, runs, torch.device('cpu'), half=dtype)['latency_s']
    if torch.cuda.is_available():
        gpu = profile(net, lr_hw, runs, torch.device('cuda'))
        dtype = half_dtype(torch.device('cuda'))
        figures.update(latency_gpu_s=gpu['latency_s'], peak_mem_gpu_MB=gpu['peak_mem_MB'],
                       latency_gpu_half_s=profile(net, lr_hw, runs, torch.device('cuda'), half=dtype)['latency_s'])
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({'network_g': net, 'figures': figures}))
    return figures


def _shown(network: dict) -> dict:
    """A run's network options for the report, with the cross-view matching spelled out where the arch has one
    (its class default when the options leave it out: which NIR a guided network takes)."""
    import inspect

    from basicsr.utils.registry import ARCH_REGISTRY

    from cspsr_arch.benchmark.runs import network_cvm
    shown = plain(network)
    if 'cvm' not in shown and 'cvm' in inspect.signature(ARCH_REGISTRY.get(network['type'])).parameters:
        shown['cvm'] = network_cvm(network)
    return shown


def profile_networks(plan, preset, out_dir: Path) -> dict:
    """Cost of every network of the main table at each scale, cached per network in ``<out>/profile``."""
    import torch

    from cspsr_arch.benchmark.profile import MODELS, network_options
    scales = {}
    table = plan.networks()
    for scale, rows in table.items():
        by_row = scales.setdefault(f'x{scale}', {})
        for row, runs in rows.items():
            by_row[row] = _cost(plain(runs[0].opt['network_g']), scale, preset.profile_runs,
                                out_dir / 'profile' / f'{row}_x{scale}.json', f'{row} at x{scale}')
    paper = {}
    if preset.paper_cost:
        for row in [r for r in table[max(table)] if r in MODELS]:
            net = network_options(row, 4)
            paper[row] = _cost(net, 4, 2, out_dir / 'profile' / f'paper_{row}_x4.json', f'paper-size {row}')
    return {'frame': f'{FRAME[1] // 4 * 4}x{FRAME[0] // 4 * 4} (x4; {FRAME[1]}x{FRAME[0]} cropped to the scale)',
            'cpu_threads': torch.get_num_threads(), 'runs': preset.profile_runs,
            'memory': 'CPU: peak resident-set growth of one forward pass in a fresh process'
                      + ('; GPU figures in report.json' if torch.cuda.is_available() else ''), 'scales': scales,
            **({'paper_size_x4': paper} if paper else {})}


def measure_throughput(plan, compiled: bool, out_dir: Path) -> dict:
    """Training iterations per second of CSPSR and EDSR at the largest scale, eager (and compiled), cached."""
    from cspsr_arch.benchmark.throughput import training_throughput
    table = plan.networks()
    scale = max(table)
    rows = {}
    for row in ('CSPSR', 'EDSR'):
        runs = table[scale].get(row)
        if not runs:
            continue
        for mode in ('eager', 'compiled') if compiled else ('eager', ):
            cache = out_dir / 'profile' / f'throughput_{row}_x{scale}_{mode}.json'
            if cache.is_file() and json.loads(cache.read_text())['options'] == plain(runs[0].opt):
                figures = json.loads(cache.read_text())['figures']
            else:
                print(f'[benchmark] training throughput of {row} ({mode})', flush=True)
                figures = training_throughput(runs[0].opt, compiled=mode == 'compiled')
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps({'options': plain(runs[0].opt), 'figures': figures}))
            rows.setdefault(row, {})[mode] = figures
    return {'scale': f'x{scale}', 'rows': rows}


def _budget(preset, sample: dict) -> dict:
    train, loader = sample['train'], sample['datasets']['train']
    return {'iters': train['total_iter'], 'batch': loader['batch_size_per_gpu'], 'gt_size': loader['gt_size'],
            'lr': train['optim_g']['lr'], 'pixel_loss': train['pixel_opt']['type'],
            'schedule': 'cosine decay to 1e-6' if preset.cosine else str(plain(train['scheduler'])),
            'stereo_iters': preset.stereo_iters or 'option file', 'stereo_batch': preset.stereo_batch or 'option file',
            'stereo_gt_size': preset.stereo_gt_size or 'option file'}


def run_benchmark(preset, name: str, out: Path, models: Sequence[str], ablations: bool, real: Optional[Path],
                  command: str, train_only: bool = False, country: Optional[Path] = None,
                  protocols: Sequence[str] = ('bicubic', ), seeds: int = 1, compiled: bool = False,
                  model_seeds: Optional[Dict[str, int]] = None, datasets: Sequence[str] = DEFAULT_DATASETS,
                  country_train: Optional[str] = None, external: Optional[Dict[str, Path]] = None,
                  protocol_models: Optional[Dict[str, Sequence[str]]] = None) -> Optional[dict]:
    """Everything of the module docstring; returns the report dictionary (None with ``train_only``).

    Args:
        preset: Budget, sizes and data settings.
        name: Benchmark name (folder under ``out``).
        out: Where benchmarks go.
        models: Rows of the main table.
        ablations: Also the Table 4 variants.
        real: Folder of the six real pairs, or None.
        command: The command line, for the report.
        train_only: Train and stop.
        country: Folder of the EPFL country pairs, or None.
        protocols: ``bicubic`` and/or ``camera``.
        seeds: Training runs per model and protocol.
        compiled: Evaluate through ``torch.compile`` and report compiled training throughput too.
        model_seeds: Models trained another number of times than ``seeds``.
        datasets: The data sets to train and test on (:data:`DATASETS`).
        country_train: The country sets' training-pair policy (:data:`TRAIN_POLICIES`), or None (the preset's).
        external: Rows of single-image SR checkpoints of other projects, scored without training (name -> path;
            :mod:`cspsr_arch.benchmark.external`).
        protocol_models: Protocols that train and test only some of ``models`` (protocol -> those models).
    """
    import torch

    from cspsr_arch.benchmark import report as report_mod
    from cspsr_arch.benchmark.curves import plot
    from cspsr_arch.benchmark.results import evaluate_all, learning_curves, targets
    from cspsr_arch.benchmark.runs import plan as make_plan
    from cspsr_arch.benchmark.training import setup_logger, train_all
    root = (out / name).resolve()
    (root / 'logs').mkdir(parents=True, exist_ok=True)
    setup_logger(root / 'logs' / 'benchmark.log')
    data = prepare_data(root / 'data', preset, real, country, datasets, country_train)
    val_scenes = {k: v for k, v in preset.val_scenes.items() if k in data and 'train' in data[k]['keys']}
    train_dir = combine_train_splits(data, root / 'data' / 'train', preset.scales, val_scenes)
    val_dir = combine_train_splits(data, root / 'data' / 'val', preset.scales, val_scenes, validation=True) \
        if val_scenes else None
    plan = make_plan(ROOT / 'options', train_dir, preset, list(models), ablations, protocols, seeds, val_dir,
                     model_seeds, protocol_models)
    records = train_all(plan.runs, root, training_fingerprint(train_dir, val_dir, preset.scales))
    if train_only:
        return None
    results, stereo, ablation = evaluate_all(plan, data, records, root, preset.camera, compiled, external)
    first = plan.networks()[min(preset.scales)]
    curves = learning_curves(plan, root)
    plot(curves, root / 'figures' / 'learning_curves.png')
    report = {
        'benchmark': name, 'preset': preset.name, 'command': command,
        'created': datetime.now().isoformat(timespec='seconds'),
        'machine': {'cpus': os.cpu_count(), 'torch': torch.__version__, 'torch_threads': torch.get_num_threads(),
                    **({'gpu': torch.cuda.get_device_name(0)} if torch.cuda.is_available() else {})},
        'budget': _budget(preset, next(iter(first.values()))[0].opt),
        'protocols': list(plan.table), 'seeds': seeds, 'model_seeds': dict(model_seeds or {}),
        'protocol_models': {p: [m for m in models if m in subset] for p, subset in (protocol_models or {}).items()},
        'camera': plain(preset.camera),
        'train_images': len((train_dir / META_INFO).read_text().splitlines()),
        'validation': {'images': len((val_dir / META_INFO).read_text().splitlines()) if val_dir else 0,
                       'scenes': plain(val_scenes), 'every': preset.val_every,
                       'figure': 'figures/learning_curves.png', 'curves': curves},
        'datasets': {k: {'description': v['description'], 'train_images': len(v['keys'].get('train', [])),
                         'test_images': len(v['keys'].get('test', [])), 'test_keys': v['keys'].get('test', []),
                         **({'registration': v['registration']} if 'registration' in v else {})}
                     for k, v in data.items()},
        'country_train': country_train or 'preset',
        'external': {name: str(path) for name, path in (external or {}).items()},
        'models': {row: {'model_type': runs[0].opt['model_type'], 'network_g': plain(runs[0].opt['network_g']),
                         'description': DESCRIPTIONS.get(row, '') + ' Here: ' + ', '.join(
                             f'{k} {v}' for k, v in _shown(runs[0].opt['network_g']).items() if k not in HIDDEN_KEYS)
                         + '.'} for row, runs in first.items()},
        'results': results, 'stereo': stereo, 'ablation': ablation,
        'profile': profile_networks(plan, preset, root),
        'throughput': measure_throughput(plan, compiled, root),
    }
    scale = max(preset.scales)
    report['figures'] = {}
    for protocol, by_scale in plan.table.items():
        shown = [r for r in report_mod.FIGURE_ROWS if r in ('bicubic', 'GT') or r in by_scale[scale]]
        for dataset in data:
            path = Path('figures') / f'{protocol}_{dataset}_x{scale}.png'
            figure = report_mod.comparison_figure(root / 'images' / f'{protocol}_{dataset}_x{scale}', shown,
                                                  root / path, scale)
            report['figures'][f'{protocol}_{dataset}'] = {**figure, 'path': str(path), 'scale': f'x{scale}'}
    report['targets'] = targets(report)
    report_mod.write(report, root)
    return report
