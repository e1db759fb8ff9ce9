#!/usr/bin/env python
"""Benchmark CSPSR against EDSR, RCAN, HAT and a concatenation baseline on the same data, one command.

Steps (each one is skipped when an earlier run of the same benchmark finished it, so an interrupted
benchmark resumes where it stopped):

1. **Data** under ``<out>/<name>/data``: the synthetic cross-view set (``tools/make_synthetic_rgbnir.py``)
   and the semi-synthetic set made from the real RGB-NIR pairs of ``--real`` (``tools/make_semisynthetic_rgbnir.py``,
   pairs that are not registered left out; absent folder: the set is left out, and the report says so).
2. **Training** with ``basicsr train`` (BasicSR's pipeline, in this process) of every model at every scale
   on one training split, the union of the data sets' training splits (``data/train``, hard links), for the
   same budget (``cspsr_arch.benchmark.presets``): the pre-training of CSPSR's learned cross-view matching,
   then EDSR, RCAN, HAT (VIS only), the concatenation baseline, CSPSR, and (if the preset says so) CSPSR with
   the ground-truth disparity as a reference row; ``--ablations`` adds the paper's Table 4 variants (x4).
   Option files of every run: ``<out>/<name>/options``; logs: ``<out>/<name>/logs``.
3. **Evaluation** of each model and of bicubic interpolation on each data set's test split (PSNR/SSIM, RGB and
   Y, border = scale; ``cspsr_arch.benchmark.evaluation``), outputs in ``<out>/<name>/images``.
4. **Cost** of each network as trained: parameters, GFLOPs on a 582x429 HR frame, CPU (and GPU) latency,
   peak memory (``tools/profile_model.py``); training iterations per second of CSPSR and EDSR at the preset's
   batch and patch size (``cspsr_arch.benchmark.throughput``), eager, and compiled with ``--compile``
   (which also evaluates through ``torch.compile``).
5. **Report**: ``<out>/<name>/report.md`` and ``report.json`` (Table 1 and Table 4 analogs, cost, targets) and
   ``<out>/<name>/figures/<data set>_x<s>.png`` (the same crop from bicubic / EDSR / RCAN / HAT / CSPSR / ground
   truth with the crop's PSNR under each).

Presets: ``--preset quick`` (tiny data and networks, a few minutes on a CPU; what the test runs), ``--preset cpu``
(about an hour on a 2-core CPU), ``--preset paper`` (the option files' paper settings; for a GPU).

Usage::

    python tools/benchmark.py --preset quick [--name NAME] [--out results/benchmark] [--models EDSR CSPSR ...]
                              [--ablations] [--real ../shared/data/real_rgbnir] [--threads N] [--train-only]
                              [--iters N] [--network MODEL.KEY=VALUE ...]

``--iters`` and ``--network`` (e.g. ``--name cpu_instance --network CSPSR.norm=instance``) change the preset for
one benchmark, to try a variant on the same data and budget; the report lists the networks as trained.

A second process started with the same arguments and ``--train-only`` shares the training (runs are
locked while trained, see ``cspsr_arch.benchmark.training``) and stops without evaluating.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL = ROOT.parent / 'shared' / 'data' / 'real_rgbnir'
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


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` once (tools/ is not a package)."""
    module_name = f'cspsr_tool_{name}'
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, ROOT / 'tools' / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _generate(folder: Path, settings: dict, make) -> dict:
    """Run ``make()`` unless ``folder`` holds a set generated with the same settings; return its record."""
    stamp = folder / 'benchmark_data.json'
    if stamp.is_file():
        record = json.loads(stamp.read_text())
        if record['settings'] == settings:
            return record
    keys, infos = make()
    record = {'settings': settings, 'keys': keys, 'infos': _plain(infos)}
    stamp.write_text(json.dumps(record, indent=1))
    return record


def prepare_data(data_root: Path, preset, real: Optional[Path]) -> Dict[str, dict]:
    """Generate (or reuse) the benchmark's data sets; return name -> ``dir``, ``keys``, ``description``."""
    data_root.mkdir(parents=True, exist_ok=True)
    scales = list(preset.scales)
    syn, out = dict(preset.synthetic), {}
    folder = data_root / 'synthetic'
    settings = _plain({'scales': scales, 'seed': 0, **syn})
    print(f'[benchmark] data: synthetic cross-view set in {folder}', flush=True)
    record = _generate(folder, settings, lambda: load_tool('make_synthetic_rgbnir').build_dataset(
        folder, scales, 0, overwrite=True, **syn))
    out['synthetic'] = {'dir': folder, 'keys': record['keys'], 'settings': settings, 'description': (
        f"the embedded synthetic cross-view set (tools/make_synthetic_rgbnir.py, longest side {syn.get('max_size', 480)} "
        f"px, {syn.get('variants', 2)} variant(s) per training scene; VIS camera effects, rendered NIR, dense "
        'ground-truth disparity).')}
    if real is None or not real.is_dir():
        print(f'[benchmark] data: no real pairs at {real}: the semi-synthetic set is left out', flush=True)
        return out
    semi = dict(preset.semisynthetic)
    folder = data_root / 'semisynthetic'
    settings = _plain({'input': str(real.resolve()), 'scales': scales, 'seed': 0, **semi})
    print(f'[benchmark] data: semi-synthetic set from {real} in {folder}', flush=True)
    record = _generate(folder, settings, lambda: load_tool('make_semisynthetic_rgbnir').build_dataset(
        real, folder, scales, 0, misaligned='skip', overwrite=True, **semi))
    skipped = [f"{i['key']} ({i['registration']['misalignment']:.1f} px)" for i in record['infos'] if i['skipped']]
    size = f"longest side {semi['max_size']} px" if semi.get('max_size') else 'full size'
    out['semisynthetic'] = {'dir': folder, 'keys': record['keys'], 'settings': settings, 'description': (
        f"the real VIS/NIR pairs of {real.name}/ with a generated disparity, the real NIR moved to the right view "
        f"(tools/make_semisynthetic_rgbnir.py, {size}, {semi.get('variants', 2)} variant(s) per training pair, split "
        'by scene)' + (f"; left out as not registered: {', '.join(skipped)}." if skipped else '.'))}
    return out


def _up_to_date(src: Path, dst: Path) -> bool:
    """``dst`` is a hard link or a complete copy of ``src`` made after it."""
    try:
        d = dst.stat()
    except FileNotFoundError:
        return False
    s = src.stat()
    return d.st_size == s.st_size and d.st_mtime >= s.st_mtime


def combine_train_splits(data: Dict[str, dict], out: Path, scales: Sequence[int]) -> Path:
    """One training split holding every data set's training images (keys ``<data set>__<key>``), hard-linked
    (copied where links are impossible); kept as it is when it already holds exactly these images (another
    benchmark process may be reading it), rebuilt otherwise.

    Args:
        data: Data set name -> record of :func:`prepare_data`.
        out: The combined split folder.
        scales: Scales whose LR folders to include.
    """
    import shutil
    streams = ['HR/VIS', 'HR/NIR', 'HR/DISP_L', 'HR/DISP_R'] + [
        f'LR_bicubic/X{s}/{k}' for s in scales for k in ('VIS', 'NIR', 'DISP_L', 'DISP_R')]
    meta, files = [], []
    for name, record in data.items():
        split = record['dir'] / 'train'
        for line in (split / 'meta_info.txt').read_text().splitlines():
            key = line.split('.png')[0]
            meta.append(f'{name}__{line}')
            files += [(split / stream / f'{key}.png', out / stream / f'{name}__{key}.png') for stream in streams]
    meta_text = '\n'.join(meta) + '\n'
    meta_file = out / 'meta_info.txt'
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


def _cost(profile_model: ModuleType, net: dict, scale: int, runs: int, cache: Path, what: str) -> dict:
    """Cost figures of one network on the benchmark frame (cached in ``cache`` for these options)."""
    import torch
    if cache.is_file() and json.loads(cache.read_text())['network_g'] == net:
        return json.loads(cache.read_text())['figures']
    print(f'[benchmark] cost of {what}', flush=True)
    lr_hw = (FRAME[0] // scale, FRAME[1] // scale)
    cpu = profile_model.profile(net, lr_hw, runs, torch.device('cpu'))
    figures = {'params_M': cpu['params_M'], 'gflops': cpu['gflops'], 'latency_cpu_s': cpu['latency_s'],
               'peak_mem_MB': profile_model.cpu_peak_memory(net, lr_hw)}
    if torch.cuda.is_available():
        gpu = profile_model.profile(net, lr_hw, runs, torch.device('cuda'))
        figures.update(latency_gpu_s=gpu['latency_s'], peak_mem_gpu_MB=gpu['peak_mem_MB'])
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({'network_g': net, 'figures': figures}))
    return figures


def profile_networks(plan, preset, out_dir: Path) -> dict:
    """Cost of every network of the main table at each scale, cached per network in ``<out>/profile``."""
    import torch
    profile_model = load_tool('profile_model')
    scales = {}
    for scale, rows in plan.table.items():
        by_row = scales.setdefault(f'x{scale}', {})
        for row, run in rows.items():
            by_row[row] = _cost(profile_model, _plain(run.opt['network_g']), scale, preset.profile_runs,
                                out_dir / 'profile' / f'{row}_x{scale}.json', f'{row} at x{scale}')
    paper = {}
    if preset.paper_cost:
        for row in [r for r in plan.table[max(plan.table)] if r in profile_model.MODELS]:
            net = profile_model.network_options(row, 4)
            paper[row] = _cost(profile_model, net, 4, 2, out_dir / 'profile' / f'paper_{row}_x4.json', f'paper-size {row}')
    return {'frame': f'{FRAME[1] // 4 * 4}x{FRAME[0] // 4 * 4} (x4; {FRAME[1]}x{FRAME[0]} cropped to the scale)',
            'cpu_threads': torch.get_num_threads(), 'runs': preset.profile_runs,
            'memory': 'CPU: peak resident-set growth of one forward pass in a fresh process'
                      + ('; GPU figures in report.json' if torch.cuda.is_available() else ''), 'scales': scales,
            **({'paper_size_x4': paper} if paper else {})}


def measure_throughput(plan, compiled: bool, out_dir: Path) -> dict:
    """Training iterations per second of CSPSR and EDSR at the largest scale, eager (and compiled), cached."""
    from cspsr_arch.benchmark.throughput import training_throughput
    scale = max(plan.table)
    rows = {}
    for row in ('CSPSR', 'EDSR'):
        run = plan.table[scale].get(row)
        if run is None:
            continue
        for mode in ('eager', 'compiled') if compiled else ('eager', ):
            cache = out_dir / 'profile' / f'throughput_{row}_x{scale}_{mode}.json'
            if cache.is_file() and json.loads(cache.read_text())['options'] == _plain(run.opt):
                figures = json.loads(cache.read_text())['figures']
            else:
                print(f'[benchmark] training throughput of {row} ({mode})', flush=True)
                figures = training_throughput(run.opt, compiled=mode == 'compiled')
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps({'options': _plain(run.opt), 'figures': figures}))
            rows.setdefault(row, {})[mode] = figures
    return {'scale': f'x{scale}', 'rows': rows}


def _targets(report: dict) -> List[dict]:
    targets = []
    for dataset, goal in (('synthetic', 1.0), ('semisynthetic', 0.5)):
        rows = report['results'].get(dataset, {}).get('x4', {})
        if 'CSPSR' in rows and 'EDSR' in rows:
            delta = rows['CSPSR']['psnr'] - rows['EDSR']['psnr']
            targets.append({'what': f'CSPSR - EDSR PSNR, {dataset}, x4', 'value': f'{delta:+.2f} dB',
                            'goal': f'>= +{goal:.1f} dB', 'delta_db': delta, 'met': bool(delta >= goal)})
    for key, what in (('paper_size_x4', 'CSPSR() / EDSR-baseline CPU latency, x4, paper-size networks'),
                      ('x4', 'CSPSR / EDSR CPU latency, x4, the networks trained here')):
        prof = report['profile'].get(key) or report['profile']['scales'].get(key, {})
        if 'CSPSR' in prof and 'EDSR' in prof:
            c, e = prof['CSPSR']['latency_cpu_s'], prof['EDSR']['latency_cpu_s']
            targets.append({'what': what, 'value': f'{c:.3f} s / {e:.3f} s = {c / e:.2f}', 'goal': '<= 1',
                            'ratio': c / e, 'met': bool(c <= e)})
    return targets


def _evaluate_all(plan, data: Dict[str, dict], records: dict, root: Path, compiled: bool = False) -> tuple:
    """Scores of bicubic and every row on every test set (Table 1) and of the ablations (Table 4)."""
    from cspsr_arch.benchmark.evaluation import METRICS, evaluate
    from cspsr_arch.benchmark.runs import ABLATION_LABELS
    results, stereo, ablation = {}, {}, {}
    for dataset, record in data.items():
        split = record['dir'] / 'test'
        for scale, rows in plan.table.items():
            image_dir = root / 'images' / f'{dataset}_x{scale}'
            table = {'bicubic': {k: evaluate(None, root, dataset, split, scale, image_dir)[k] for k in METRICS}}
            for row, run in rows.items():
                scores = evaluate(run, root, dataset, split, scale, image_dir, compiled)
                table[row] = {**{k: scores[k] for k in METRICS}, 'train_s': records[run.name]['wall_s'],
                              'iters': records[run.name]['iters']}
                if run.stereo:
                    stereo[f'x{scale}'] = {'iters': records[run.stereo]['iters'],
                                           'train_s': records[run.stereo]['wall_s']}
            results.setdefault(dataset, {})[f'x{scale}'] = table
        if plan.ablation:
            image_dir = root / 'images' / f'{dataset}_x4_ablation'
            ablation[dataset] = {stem: {'label': ABLATION_LABELS.get(stem, stem), 'run': run.name,
                                        **{k: evaluate(run, root, dataset, split, 4, image_dir, compiled)[k] for k in METRICS},
                                        'train_s': records[run.name]['wall_s']}
                                 for stem, run in plan.ablation.items()}
    return results, stereo, ablation


def _budget(preset, sample: dict) -> dict:
    train, loader = sample['train'], sample['datasets']['train']
    return {'iters': train['total_iter'], 'batch': loader['batch_size_per_gpu'], 'gt_size': loader['gt_size'],
            'lr': train['optim_g']['lr'], 'pixel_loss': train['pixel_opt']['type'],
            'schedule': 'cosine decay to 1e-6' if preset.cosine else str(_plain(train['scheduler'])),
            'stereo_iters': preset.stereo_iters or 'option file', 'stereo_batch': preset.stereo_batch or 'option file',
            'stereo_gt_size': preset.stereo_gt_size or 'option file'}


def run_benchmark(preset, name: str, out: Path, models: Sequence[str], ablations: bool, real: Optional[Path],
                  command: str, train_only: bool = False, compiled: bool = False) -> Optional[dict]:
    """Everything of the module docstring; returns the report dictionary (None with ``train_only``)."""
    import torch

    from cspsr_arch.benchmark import report as report_mod
    from cspsr_arch.benchmark.runs import plan as make_plan
    from cspsr_arch.benchmark.training import setup_logger, train_all
    root = (out / name).resolve()
    (root / 'logs').mkdir(parents=True, exist_ok=True)
    setup_logger(root / 'logs' / 'benchmark.log')
    data = prepare_data(root / 'data', preset, real)
    train_dir = combine_train_splits(data, root / 'data' / 'train', preset.scales)
    plan = make_plan(ROOT / 'options', train_dir, preset, list(models), ablations)
    fingerprint = json.dumps({k: v['settings'] for k, v in data.items()}, sort_keys=True)
    records = train_all(plan.runs, root, fingerprint)
    if train_only:
        return None
    results, stereo, ablation = _evaluate_all(plan, data, records, root, compiled)
    first = plan.table[min(plan.table)]
    report = {
        'benchmark': name, 'preset': preset.name, 'command': command,
        'created': datetime.now().isoformat(timespec='seconds'),
        'machine': {'cpus': os.cpu_count(), 'torch': torch.__version__, 'torch_threads': torch.get_num_threads(),
                    **({'gpu': torch.cuda.get_device_name(0)} if torch.cuda.is_available() else {})},
        'budget': _budget(preset, next(iter(first.values())).opt),
        'train_images': len((train_dir / 'meta_info.txt').read_text().splitlines()),
        'datasets': {k: {'description': v['description'], 'train_images': len(v['keys'].get('train', [])),
                         'test_images': len(v['keys'].get('test', [])), 'test_keys': v['keys'].get('test', [])}
                     for k, v in data.items()},
        'models': {row: {'model_type': run.opt['model_type'], 'network_g': _plain(run.opt['network_g']),
                         'description': DESCRIPTIONS.get(row, '') + ' Here: ' + ', '.join(
                             f'{k} {v}' for k, v in _plain(run.opt['network_g']).items() if k not in HIDDEN_KEYS) + '.'}
                   for row, run in first.items()},
        'results': results, 'stereo': stereo, 'ablation': ablation,
        'profile': profile_networks(plan, preset, root),
        'throughput': measure_throughput(plan, compiled, root),
    }
    scale = max(preset.scales)
    shown = [r for r in report_mod.FIGURE_ROWS if r in ('bicubic', 'GT') or r in plan.table[scale]]
    report['figures'] = {}
    for dataset in data:
        path = Path('figures') / f'{dataset}_x{scale}.png'
        figure = report_mod.comparison_figure(root / 'images' / f'{dataset}_x{scale}', shown, root / path, scale)
        report['figures'][dataset] = {**figure, 'path': str(path), 'scale': f'x{scale}'}
    report['targets'] = _targets(report)
    report_mod.write(report, root)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point."""
    from cspsr_arch.benchmark.presets import PRESETS, SR_MODELS, with_networks
    from cspsr_arch.errors import CSPSRInputError
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--preset', choices=sorted(PRESETS), required=True, help='budget and sizes (see below)')
    p.add_argument('--name', default=None, help='benchmark name (folder under --out); default: the preset name')
    p.add_argument('--out', default='results/benchmark', help='where benchmarks go (default: results/benchmark)')
    p.add_argument('--models', nargs='+', default=None, choices=[*SR_MODELS, 'CSPSR_given'],
                   help='models of the main table (default: all, and CSPSR_given if the preset has it)')
    p.add_argument('--ablations', action='store_true', help='also train the Table 4 variants (x4)')
    p.add_argument('--real', default=str(DEFAULT_REAL), help=f'folder of real *_rgb/*_nir pairs (default: {DEFAULT_REAL})')
    p.add_argument('--iters', type=int, default=None, help="override the preset's training iterations")
    p.add_argument('--network', nargs='+', default=[], metavar='MODEL.KEY=VALUE',
                   help="change the preset's network options, e.g. CSPSR.norm=instance CSPSR.num_dmf=6 (CSPSR's apply "
                        "to CSPSR_given too); use with another --name")
    p.add_argument('--train-only', action='store_true',
                   help='train and stop (no evaluation, no report): a helper process sharing the training of a '
                        'benchmark that another process runs with the same arguments')
    p.add_argument('--compile', action='store_true',
                   help='torch.compile the networks for the evaluation, and also report compiled training throughput')
    p.add_argument('--threads', type=int, default=None,
                   help='CPU threads of torch (default: its own choice, all cores); 1 is faster on a busy machine')
    args = p.parse_args(argv)
    if args.threads:
        os.environ['OMP_NUM_THREADS'] = str(args.threads)  # also for the memory-measuring subprocesses
        import torch
        torch.set_num_threads(args.threads)
    import cspsr_arch  # noqa: F401  (registration)
    preset = PRESETS[args.preset]
    if args.iters:
        preset = dataclasses.replace(preset, iters=args.iters)
    start = time.time()
    try:
        preset = with_networks(preset, args.network)
        models = args.models or [*SR_MODELS, *(['CSPSR_given'] if preset.given_reference else [])]
        report = run_benchmark(preset, args.name or preset.name, Path(args.out), models, args.ablations,
                               Path(args.real) if args.real else None,
                               'python tools/benchmark.py ' + ' '.join(a for a in argv if a != '--train-only'),
                               train_only=args.train_only, compiled=args.compile)
    except CSPSRInputError as err:
        print(f'benchmark: error: {err}', file=sys.stderr)
        return 2
    root = Path(args.out) / (args.name or preset.name)
    if report is None:
        print(f'\ntrained: {root / "experiments"} ({(time.time() - start) / 60:.1f} min)')
        return 0
    for dataset, by_scale in report['results'].items():
        for scale, rows in by_scale.items():
            print(f'\n{dataset} {scale}: ' + '  '.join(f"{k} {v['psnr']:.2f}" for k, v in rows.items()))
    for t in report['targets']:
        print(f"{t['what']}: {t['value']} (goal {t['goal']}) {'met' if t['met'] else 'NOT met'}")
    print(f'\nreport: {root / "report.md"} ({(time.time() - start) / 60:.1f} min)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
