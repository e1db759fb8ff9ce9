"""The benchmark pipeline behind ``tools/benchmark.py``: data, training, evaluation, cost and report.

Steps (each one is skipped when an earlier run of the same benchmark finished it, so an interrupted
benchmark resumes where it stopped):

1. **Data** under ``<out>/<name>/data``: the synthetic cross-view set (``cspsr_arch.prep.synthetic``), the
   semi-synthetic sets made from the real RGB-NIR pairs of ``--country`` (the EPFL country pairs, the main real
   test set) and ``--real`` (:mod:`cspsr_arch.prep.semisynthetic`; an absent folder leaves its set out, and
   the report says so). The preset's validation scenes are held out of the training splits.
2. **Training** with ``basicsr train`` (BasicSR's pipeline, in this process) of every model at every scale and
   under every protocol (``bicubic``, ``camera``), ``--seeds`` times each, on one training split, the union of
   the data sets' training splits (``data/train``, hard links), for the same budget
   (``cspsr_arch.benchmark.presets``): the pre-training of CSPSR's learned cross-view matching, then EDSR, RCAN,
   HAT (VIS only), the concatenation baseline, CSPSR, and (if the preset says so) CSPSR with the ground-truth
   disparity as a reference row; ``--ablations`` adds the paper's Table 4 variants (x4). The validation split
   (``data/val``) is scored every ``val_every`` iterations. Option files of every run: ``<out>/<name>/options``;
   logs: ``<out>/<name>/logs``.
3. **Evaluation** of each model and of bicubic interpolation on each data set's test split under each protocol
   (PSNR/SSIM, RGB and Y, border = scale; ``cspsr_arch.benchmark.results``): means over seeds, paired per-image
   differences, NIR-zeroed and NIR-swapped rows; outputs in ``<out>/<name>/images``.
4. **Cost** of each network as trained: parameters, GFLOPs on a 582x429 HR frame, CPU (and GPU) latency,
   peak memory (:mod:`cspsr_arch.benchmark.profile`); training iterations per second of CSPSR and EDSR at the preset's
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
from typing import Dict, List, Optional, Sequence

from cspsr_arch.engine.options import plain
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.semisynthetic import build_dataset as build_semisynthetic
from cspsr_arch.prep.split import META_INFO, STREAM_NAMES, image_path, meta_keys

ROOT = Path(__file__).resolve().parents[2]
"""The repository (its ``options`` and ``tools`` folders)."""
DEFAULT_REAL = ROOT.parent / 'shared' / 'data' / 'real_rgbnir'
DEFAULT_COUNTRY = ROOT.parent / 'shared' / 'data' / 'nirscene_country'
FRAME = (429, 582)  # HR height, width of the cost figures (an RGB-NIR stereo frame)
DESCRIPTIONS = {
    'EDSR': 'VIS only; BasicSR\'s EDSR.',
    'RCAN': 'VIS only; BasicSR\'s RCAN.',
    'HAT': 'VIS only; the HAT of the spandrel package (cspsr_arch/archs/hat_arch.py).',
    'ConcatNIR': 'the VIS image with the unaligned right-view NIR (and its validity mask) stacked as input channels '
                 'of one branch: CSPSR(branches=concat, cvm=none), no NIR branch, no DMF, no L_CSSC.',
    'CSPSR': 'dual branch with DMF fusion; learned cross-view matching (pre-trained without labels, then fine-tuned); '
             'loss + 0.1 L_CSSC.',
    'CSPSR_given': 'CSPSR warping the NIR by the data set\'s ground-truth disparity: an oracle reference row, not a '
                   'method (real rigs have no such disparity).',
}
HIDDEN_KEYS = ('type', 'upscale', 'num_in_ch', 'num_out_ch', 'num_nir_ch', 'rgb_mean', 'img_range')


def _generate(folder: Path, settings: dict, make) -> dict:
    """Run ``make()`` unless ``folder`` holds a set generated with the same settings; return its record."""
    stamp = folder / 'benchmark_data.json'
    if stamp.is_file():
        record = json.loads(stamp.read_text())
        if record['settings'] == settings:
            return record
    keys, infos = make()
    record = {'settings': settings, 'keys': keys, 'infos': plain(infos)}
    stamp.write_text(json.dumps(record, indent=1))
    return record


def _semisynthetic(data_root: Path, name: str, source: Path, settings: dict, scales: List[int], policy: str) -> dict:
    """A semi-synthetic set made from the real pairs of ``source`` (generated or reused)."""
    semi = dict(settings)
    policy = semi.pop('misaligned', policy)
    folder = data_root / name
    stamp = plain({'input': str(source.resolve()), 'scales': scales, 'seed': 0, 'misaligned': policy, **semi})
    print(f'[benchmark] data: semi-synthetic set from {source} in {folder}', flush=True)
    record = _generate(folder, stamp, lambda: build_semisynthetic(
        source, folder, scales, 0, misaligned=policy, overwrite=True, **semi))
    skipped = [f"{i['key']} ({i['registration']['misalignment']:.1f} px)" for i in record['infos'] if i['skipped']]
    kept = [i['key'] for i in record['infos'] if i['misaligned'] and not i['skipped']]
    size = f"longest side {semi['max_size']} px" if semi.get('max_size') else 'full size'
    notes = (f"; left out as not registered: {', '.join(skipped)}" if skipped else '') + (
        f"; kept although the registration check measured more than 2.5 px (moving content between the two "
        f"shots): {len(kept)} pair(s)" if kept else '')
    return {'dir': folder, 'keys': record['keys'], 'settings': stamp, 'description': (
        f"the real VIS/NIR pairs of {source.name}/ with a generated disparity, the real NIR moved to the right view "
        f"(tools/make_semisynthetic_rgbnir.py, {size}, {semi.get('variants', 2)} variant(s) per training pair, split "
        f'by scene){notes}.')}


DATASETS = ('synthetic', 'country', 'semisynthetic')
"""The benchmark's data sets (``--datasets``)."""


def prepare_data(data_root: Path, preset, real: Optional[Path], country: Optional[Path] = None,
                 datasets: Sequence[str] = DATASETS) -> Dict[str, dict]:
    """Generate (or reuse) the benchmark's data sets; return name -> ``dir``, ``keys``, ``description``.

    Args:
        data_root: Where the sets go.
        preset: Their settings.
        real: Folder of the six real pairs (semi-synthetic set ``semisynthetic``), or None.
        country: Folder of the EPFL country pairs (semi-synthetic set ``country``), or None.
        datasets: The sets to use, among :data:`DATASETS` (e.g. ``country`` alone: models trained on real NIR only).
    """
    from cspsr_arch.prep.synthetic.build import build_dataset as build_synthetic
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown or not datasets:
        raise CSPSRInputError(f'data sets {unknown or "(none)"}: choose among {", ".join(DATASETS)}.')
    data_root.mkdir(parents=True, exist_ok=True)
    scales = list(preset.scales)
    syn, out = dict(preset.synthetic), {}
    if 'synthetic' in datasets:
        folder = data_root / 'synthetic'
        settings = plain({'scales': scales, 'seed': 0, **syn})
        print(f'[benchmark] data: synthetic cross-view set in {folder}', flush=True)
        record = _generate(folder, settings, lambda: build_synthetic(
            folder, scales, 0, overwrite=True, **syn))
        out['synthetic'] = {'dir': folder, 'keys': record['keys'], 'settings': settings, 'description': (
            f"the embedded synthetic cross-view set (cspsr_arch.prep.synthetic, longest side "
            f"{syn.get('max_size', 480)} px, {syn.get('variants', 2)} variant(s) per training scene, "
            f"{syn.get('test_variants', 1)} per test scene; VIS camera effects, rendered NIR, dense ground-truth "
            'disparity).')}
    for name, source, settings, policy in (('country', country, preset.country, 'keep'),
                                           ('semisynthetic', real, preset.semisynthetic, 'skip')):
        if name not in datasets:
            continue
        if source is None or not source.is_dir():
            print(f'[benchmark] data: no real pairs at {source}: the {name} set is left out', flush=True)
        elif settings:
            out[name] = _semisynthetic(data_root, name, source, settings, scales, policy)
    return out


def _up_to_date(src: Path, dst: Path) -> bool:
    """``dst`` is a hard link or a complete copy of ``src`` made after it."""
    try:
        d = dst.stat()
    except FileNotFoundError:
        return False
    s = src.stat()
    return d.st_size == s.st_size and d.st_mtime >= s.st_mtime


def scene_of(key: str) -> str:
    """The scene of a training key (``<scene>_v<k>`` -> ``<scene>``)."""
    stem, _, variant = key.rpartition('_v')
    return stem if stem and variant.isdigit() else key


def combine_train_splits(data: Dict[str, dict], out: Path, scales: Sequence[int],
                         val_scenes: Optional[Dict[str, Sequence[str]]] = None, validation: bool = False) -> Path:
    """One split holding every data set's training images (keys ``<data set>__<key>``), hard-linked (copied
    where links are impossible); kept as it is when it already holds exactly these images (another
    benchmark process may be reading it), rebuilt otherwise.

    Args:
        data: Data set name -> record of :func:`prepare_data`.
        out: The combined split folder.
        scales: Scales whose LR folders to include.
        val_scenes: Per data set, training scenes held out for validation (all variants of each).
        validation: Build the validation split (those scenes) instead of the training split (the others).
    """
    import shutil
    held_out = {name: set(scenes) for name, scenes in (val_scenes or {}).items()}
    streams = [(stream, s) for s in (None, *scales) for stream in STREAM_NAMES]
    meta, files = [], []
    for name, record in data.items():
        split = record['dir'] / 'train'
        for line in (split / META_INFO).read_text().splitlines():
            key = meta_keys([line])[0]
            if (scene_of(key) in held_out.get(name, ())) != validation:
                continue
            meta.append(f'{name}__{line}')
            files += [(image_path(split, stream, key, s), image_path(out, stream, f'{name}__{key}', s))
                      for stream, s in streams]
    if not meta:
        raise CSPSRInputError(f'no {"validation" if validation else "training"} images for {out}: check the preset\'s '
                              f'val_scenes {val_scenes}.')
    meta_text = '\n'.join(meta) + '\n'
    meta_file = out / META_INFO
    if meta_file.is_file() and meta_file.read_text() == meta_text and all(_up_to_date(*f) for f in files):
        return out
    if out.exists():
        shutil.rmtree(out)
    for src, dst in files:
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    meta_file.write_text(meta_text)
    return out


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

    from cspsr_arch.benchmark.profile import cpu_peak_memory, profile
    if cache.is_file() and json.loads(cache.read_text())['network_g'] == net:
        return json.loads(cache.read_text())['figures']
    print(f'[benchmark] cost of {what}', flush=True)
    lr_hw = (FRAME[0] // scale, FRAME[1] // scale)
    cpu = profile(net, lr_hw, runs, torch.device('cpu'))
    figures = {'params_M': cpu['params_M'], 'gflops': cpu['gflops'], 'latency_cpu_s': cpu['latency_s'],
               'peak_mem_MB': cpu_peak_memory(net, lr_hw)}
    if torch.cuda.is_available():
        gpu = profile(net, lr_hw, runs, torch.device('cuda'))
        figures.update(latency_gpu_s=gpu['latency_s'], peak_mem_gpu_MB=gpu['peak_mem_MB'])
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({'network_g': net, 'figures': figures}))
    return figures


def profile_networks(plan, preset, out_dir: Path) -> dict:
    """Cost of every network of the main table at each scale, cached per network in ``<out>/profile``."""
    import torch

    from cspsr_arch.benchmark.profile import MODELS, network_options
    scales = {}
    table = next(iter(plan.table.values()))  # the networks are the same under every protocol and seed
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
    table = next(iter(plan.table.values()))
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
                  model_seeds: Optional[Dict[str, int]] = None, datasets: Sequence[str] = DATASETS) -> Optional[dict]:
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
    data = prepare_data(root / 'data', preset, real, country, datasets)
    val_scenes = {k: v for k, v in preset.val_scenes.items() if k in data}
    train_dir = combine_train_splits(data, root / 'data' / 'train', preset.scales, val_scenes)
    val_dir = combine_train_splits(data, root / 'data' / 'val', preset.scales, val_scenes, validation=True) \
        if val_scenes else None
    plan = make_plan(ROOT / 'options', train_dir, preset, list(models), ablations, protocols, seeds, val_dir,
                     model_seeds)
    records = train_all(plan.runs, root, training_fingerprint(train_dir, val_dir, preset.scales))
    if train_only:
        return None
    results, stereo, ablation = evaluate_all(plan, data, records, root, preset.camera, compiled)
    first = next(iter(plan.table.values()))[min(preset.scales)]
    curves = learning_curves(plan, root)
    plot(curves, root / 'figures' / 'learning_curves.png')
    report = {
        'benchmark': name, 'preset': preset.name, 'command': command,
        'created': datetime.now().isoformat(timespec='seconds'),
        'machine': {'cpus': os.cpu_count(), 'torch': torch.__version__, 'torch_threads': torch.get_num_threads(),
                    **({'gpu': torch.cuda.get_device_name(0)} if torch.cuda.is_available() else {})},
        'budget': _budget(preset, next(iter(first.values()))[0].opt),
        'protocols': list(plan.table), 'seeds': seeds, 'model_seeds': dict(model_seeds or {}),
        'camera': plain(preset.camera),
        'train_images': len((train_dir / META_INFO).read_text().splitlines()),
        'validation': {'images': len((val_dir / META_INFO).read_text().splitlines()) if val_dir else 0,
                       'scenes': plain(val_scenes), 'every': preset.val_every,
                       'figure': 'figures/learning_curves.png', 'curves': curves},
        'datasets': {k: {'description': v['description'], 'train_images': len(v['keys'].get('train', [])),
                         'test_images': len(v['keys'].get('test', [])), 'test_keys': v['keys'].get('test', [])}
                     for k, v in data.items()},
        'models': {row: {'model_type': runs[0].opt['model_type'], 'network_g': plain(runs[0].opt['network_g']),
                         'description': DESCRIPTIONS.get(row, '') + ' Here: ' + ', '.join(
                             f'{k} {v}' for k, v in plain(runs[0].opt['network_g']).items() if k not in HIDDEN_KEYS)
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
