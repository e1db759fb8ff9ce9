"""Summaries of a benchmark's scores: over training seeds, and paired per-image differences between models.

Differences between models of one test set are paired by image: every model is scored on the same test
inputs (fixed per key under the camera protocol), so ``mean(a_i - b_i)`` and the number of images on which
``a`` wins say more than the difference of two means of a handful of images.
"""
from typing import Dict, List, Sequence

import numpy as np

from cspsr_arch.benchmark.evaluation import METRICS


def over_seeds(results: Sequence[dict]) -> dict:
    """The mean of each metric over seeds, its standard deviation (``<metric>_std``, 0 for one seed), the
    per-seed PSNR and the per-image scores averaged over seeds.

    Args:
        results: One result of :func:`cspsr_arch.benchmark.evaluation.evaluate` per seed (same images).
    """
    out: dict = {'seeds': len(results), 'psnr_per_seed': [r['psnr'] for r in results]}
    for name in METRICS:
        values = [r[name] for r in results]
        out[name] = float(np.mean(values))
        out[f'{name}_std'] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    keys = list(results[0]['images'])
    out['images'] = {key: {name: float(np.mean([r['images'][key][name] for r in results])) for name in METRICS}
                     for key in keys}
    return out


def paired(a: Dict[str, Dict[str, float]], b: Dict[str, Dict[str, float]], metric: str = 'psnr') -> dict:
    """Per-image difference ``a - b`` of one metric: its mean, and on how many images ``a`` is higher.

    Args:
        a: Key -> scores of the first model.
        b: Key -> scores of the second model (the same keys).
        metric: Which score.
    """
    if set(a) != set(b):
        raise ValueError(f'paired scores need the same images, got {sorted(a)} and {sorted(b)}')
    diffs = [a[k][metric] - b[k][metric] for k in sorted(a)]
    return {'mean_db': float(np.mean(diffs)), 'wins': int(sum(d > 0 for d in diffs)), 'images': len(diffs)}


def paired_rows(rows: Dict[str, dict], references: Sequence[str] = ('EDSR', 'ConcatNIR', 'CSPSR'),
                vis_only: Sequence[str] = ()) -> None:
    """Add ``vs_<reference>`` (:func:`paired`) to every row of a table that is not the reference itself, and
    ``vs_best_vis_only`` (with its ``reference``) against the highest-PSNR row of ``vis_only`` in the table.

    Args:
        rows: Row -> scores with per-image ``images``.
        references: Rows every other row is compared with.
        vis_only: The VIS-only rows, the best of which is a reference too.
    """
    present = [r for r in vis_only if r in rows]
    if present:
        best = max(present, key=lambda r: rows[r]['psnr'])
        for row, scores in rows.items():
            if row != best and 'images' in scores:
                scores['vs_best_vis_only'] = {**paired(scores['images'], rows[best]['images']), 'reference': best}
    for ref in references:
        if ref not in rows:
            continue
        for row, scores in rows.items():
            if row != ref and 'images' in scores:
                scores[f'vs_{ref}'] = paired(scores['images'], rows[ref]['images'])


def strip_images(rows: Dict[str, dict]) -> Dict[str, dict]:
    """The table without per-image scores (for the report's tables; report.json keeps them)."""
    return {row: {k: v for k, v in scores.items() if k != 'images'} for row, scores in rows.items()}


def mean_curve(curves: List[List[List[float]]]) -> List[List[float]]:
    """The mean over seeds of learning curves (``[[iteration, psnr], ...]``) at the iterations all have."""
    if not curves:
        return []
    common = set.intersection(*[{it for it, _ in c} for c in curves])
    by_iter = [{it: v for it, v in c} for c in curves]
    return [[it, float(np.mean([c[it] for c in by_iter]))] for it in sorted(common)]
