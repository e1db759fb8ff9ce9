"""Every score of a benchmark: per protocol, test set, scale and model (mean and spread over seeds), the
NIR diagnostics, paired per-image differences, the ablations, the learning curves and the targets.

* **NIR diagnostics.** Every NIR-guided model is scored again on the same test inputs with its LR NIR
  replaced by zeros, and by the NIR of another test image (resized): a model that loses nothing then does
  not use its NIR.
* **Seeds.** Each row is the mean over its seeds (``psnr_std`` etc. their standard deviation); per-image
  scores are averaged over seeds before the paired differences against EDSR and the concatenation
  baseline are taken (:mod:`cspsr_arch.benchmark.aggregate`).
"""
from pathlib import Path
from typing import Dict, List, Optional

from cspsr_arch.benchmark.aggregate import mean_curve, over_seeds, paired_rows
from cspsr_arch.benchmark.curves import read_curve
from cspsr_arch.benchmark.evaluation import METRICS, evaluate
from cspsr_arch.benchmark.external import evaluate_external

NIR_MODELS = ('ConcatNIR', 'CSPSR', 'CSPSR_given', 'CSPSR_HRNIR', 'CSPSR_HRNIR_given', 'CSPSR_HRNIR_align',
              'CSPSR_HRNIR_path', 'CSPSR_additive', 'CSPSR_vis_block', 'PASSR', 'NAFSSR', 'MASASR', 'CMSR', 'CMSR_HRNIR',
              'ENLCN_NIR')
"""Rows that read the NIR image (their NIR diagnostics are measured)."""
VIS_ONLY = ('EDSR', 'RCAN', 'HAT', 'SMSR', 'NLSN', 'ENLCN')
"""Rows that see the VIS image only."""


def _row_scores(runs, root: Path, dataset: str, split: Path, scale: int, image_dir: Path,
                degradation: Optional[dict], records: dict, compiled: bool) -> dict:
    scores = over_seeds([evaluate(run, root, dataset, split, scale, image_dir if run.seed == 0 else None,
                                  degradation, compiled=compiled) for run in runs])
    scores.update(train_s=records[runs[0].name]['wall_s'], iters=records[runs[0].name]['iters'])
    if runs[0].model in NIR_MODELS:
        for nir in ('zero', 'swap'):
            changed = [evaluate(run, root, dataset, split, scale, None, degradation, nir, compiled) for run in runs]
            if all(c is not None for c in changed):
                summary = over_seeds(changed)
                scores[f'nir_{nir}'] = {k: summary[k] for k in ('psnr', 'psnr_std', 'ssim')}
                scores[f'nir_{nir}']['loss_db'] = scores['psnr'] - summary['psnr']
    return scores


def evaluate_all(plan, data: Dict[str, dict], records: dict, root: Path, camera: dict, compiled: bool = False,
                 external: Optional[Dict[str, Path]] = None) -> tuple:
    """Scores of bicubic and every row on every test set (Table 1, per protocol) and of the ablations (Table 4).

    Args:
        plan: The benchmark's :class:`~cspsr_arch.benchmark.runs.Plan`.
        data: Data set name -> record (``dir``).
        records: Run name -> training record (``wall_s``, ``iters``).
        root: The benchmark folder.
        camera: The camera protocol's degradation block.
        compiled: Run the networks through ``torch.compile``.
        external: Rows of checkpoints of other projects (name -> path; :mod:`cspsr_arch.benchmark.external`),
            scored without training.

    Returns:
        (results[protocol][dataset]['x<s>'][row], stereo['<protocol>_x<s>'], ablation[dataset][stem]).
    """
    from cspsr_arch.benchmark.runs import ABLATION_LABELS
    results: dict = {}
    stereo: dict = {}
    ablation: dict = {}
    for protocol, by_scale in plan.table.items():
        degradation = dict(camera) if protocol == 'camera' else None
        for dataset, record in data.items():
            split = record['dir'] / 'test'
            for scale, rows in by_scale.items():
                image_dir = root / 'images' / f'{protocol}_{dataset}_x{scale}'
                bicubic = evaluate(None, root, dataset, split, scale, image_dir, degradation)
                table = {'bicubic': {**{k: bicubic[k] for k in METRICS}, 'images': bicubic['images']}}
                for row, runs in rows.items():
                    table[row] = _row_scores(runs, root, dataset, split, scale, image_dir, degradation, records,
                                             compiled)
                    if runs[0].stereo:
                        stereo[f'{protocol}_x{scale}'] = {'iters': records[runs[0].stereo]['iters'],
                                                          'train_s': records[runs[0].stereo]['wall_s']}
                for name, path in (external or {}).items():
                    scores = evaluate_external(name, path, root, dataset, split, scale, image_dir, degradation)
                    table[name] = {**over_seeds([scores]), 'external': str(path)}
                paired_rows(table, vis_only=VIS_ONLY)
                results.setdefault(protocol, {}).setdefault(dataset, {})[f'x{scale}'] = table
    first = next(iter(plan.table))
    degradation = dict(camera) if first == 'camera' else None
    for dataset, record in data.items():
        if plan.ablation:
            image_dir = root / 'images' / f'{first}_{dataset}_x4_ablation'
            ablation[dataset] = {}
            for stem, run in plan.ablation.items():
                scores = evaluate(run, root, dataset, record['dir'] / 'test', 4, image_dir, degradation,
                                  compiled=compiled)
                ablation[dataset][stem] = {'label': ABLATION_LABELS.get(stem, stem), 'run': run.name,
                                           **{k: scores[k] for k in METRICS}, 'train_s': records[run.name]['wall_s']}
    return results, stereo, ablation


def learning_curves(plan, root: Path) -> Dict[str, Dict[str, List[List[float]]]]:
    """Protocol -> row -> validation PSNR against iteration (mean over seeds), at the largest scale."""
    curves: Dict[str, Dict[str, List[List[float]]]] = {}
    for protocol, by_scale in plan.table.items():
        rows = by_scale[max(by_scale)]
        curves[protocol] = {}
        for row, runs in rows.items():
            logs = [root / 'logs' / f'{run.name}.log' for run in runs]
            curves[protocol][row] = mean_curve([read_curve(log) for log in logs if log.is_file()])
    return curves


def _best_vis_only(rows: dict) -> Optional[str]:
    present = [r for r in VIS_ONLY if r in rows]
    return max(present, key=lambda r: rows[r]['psnr']) if present else None


REGISTERED_TARGETS = (('bicubic', 'CSPSR_HRNIR', 1.0), ('camera', 'CSPSR', 0.3))
"""The registered test split's targets: (protocol, row, gain over EDSR in dB); CSPSR's NIR, zeroed under the
camera protocol, must cost as much."""


def _registered_targets(protocol: str, rows: dict, add) -> None:
    for target_protocol, row, goal in REGISTERED_TARGETS:
        if protocol != target_protocol or row not in rows or 'EDSR' not in rows:
            continue
        add(f'{row} - EDSR, country_registered, {protocol}, x4', rows[row]['psnr'] - rows['EDSR']['psnr'], goal)
        if protocol == 'camera' and 'nir_zero' in rows[row]:
            add(f'{row} loss with its NIR zeroed, country_registered, camera, x4', rows[row]['nir_zero']['loss_db'],
                goal)


def targets(report: dict) -> List[dict]:
    """The targets of the NIR issue, where the report has the rows they compare (see the README), and those of
    the registered test split (:data:`REGISTERED_TARGETS`)."""
    out = []

    def add(what: str, value: float, goal: float, unit: str = 'dB') -> None:
        out.append({'what': what, 'value': f'{value:+.2f} {unit}', 'goal': f'>= {goal:+.2f} {unit}', 'delta_db': value,
                    'met': bool(value >= goal)})

    for protocol, by_dataset in report['results'].items():
        for dataset, by_scale in by_dataset.items():
            rows = by_scale.get('x4', {})
            if dataset == 'country_registered':
                _registered_targets(protocol, rows, add)
                continue
            best = _best_vis_only(rows)
            if 'CSPSR' not in rows or best is None:
                continue
            cspsr = rows['CSPSR']['psnr']
            add(f'CSPSR - best VIS-only ({best}), {dataset}, {protocol}, x4', cspsr - rows[best]['psnr'],
                {'camera': 0.5 if dataset == 'country' else 0.0, 'bicubic': 0.2 if dataset == 'synthetic' else 0.0}
                [protocol])
            if 'ConcatNIR' in rows:
                add(f'CSPSR - concatenation, {dataset}, {protocol}, x4', cspsr - rows['ConcatNIR']['psnr'], 0.0)
            if protocol == 'camera' and dataset == 'country' and 'nir_zero' in rows['CSPSR']:
                add(f'CSPSR loss with its NIR zeroed, {dataset}, camera, x4', rows['CSPSR']['nir_zero']['loss_db'], 0.5)
    for key, what in (('paper_size_x4', 'CSPSR() / EDSR-baseline CPU latency, x4, paper-size networks'),
                      ('x4', 'CSPSR / EDSR CPU latency, x4, the networks trained here')):
        prof = report['profile'].get(key) or report['profile']['scales'].get(key, {})
        if 'CSPSR' in prof and 'EDSR' in prof:
            c, e = prof['CSPSR']['latency_cpu_s'], prof['EDSR']['latency_cpu_s']
            out.append({'what': what, 'value': f'{c:.3f} s / {e:.3f} s = {c / e:.2f}', 'goal': '<= 1', 'ratio': c / e,
                        'met': bool(c <= e)})
    return out
