"""The benchmark report: ``report.json`` (every figure) and ``report.md`` (the tables a person reads), and
the visual comparison picture (the paper's Figure 5 analog)."""
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

LABELS = {
    'bicubic': 'Bicubic', 'EDSR': 'EDSR', 'RCAN': 'RCAN', 'HAT': 'HAT', 'ConcatNIR': 'Concat (VIS+NIR input)',
    'CSPSR': 'CSPSR', 'CSPSR_given': 'CSPSR, ground-truth disparity', 'CSPSR_HRNIR': 'CSPSR, HR NIR',
    'CSPSR_HRNIR_align': 'CSPSR, HR NIR, CMSR alignment', 'CSPSR_HRNIR_path': 'CSPSR, HR NIR, output-size NIR path',
    'CSPSR_HRNIR_given': 'CSPSR, HR NIR, GT disparity', 'CSPSR_additive': 'CSPSR, additive NIR',
    'CSPSR_vis_block': 'CSPSR, additive NIR, no scale', 'PASSR': 'PASSR',
    'NAFSSR': 'NAFSSR-S', 'MASASR': 'MASA-SR',
    'CMSR': 'CMSR', 'CMSR_HRNIR': 'CMSR, HR NIR', 'SMSR': 'SMSR', 'NLSN': 'NLSN', 'ENLCN': 'ENLCN',
    'ENLCN_NIR': 'ENLCN w/ NIR',
    'GT': 'Ground truth'
}
SHORT = {'CSPSR_HRNIR_given': 'HR NIR, GT disparity', 'CSPSR_given': 'CSPSR, GT disparity'}
"""Labels of the comparison picture where the table's do not fit its 22 characters."""
FIGURE_ROWS = ('bicubic', 'EDSR', 'RCAN', 'HAT', 'CSPSR', 'CSPSR_HRNIR', 'CSPSR_HRNIR_given', 'GT')
"""Panels of the comparison picture, left to right (those the run has)."""


def label(row: str) -> str:
    """Display name of a table row."""
    return LABELS.get(row, row)


def _fmt(value: Optional[float], digits: int) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else seconds * 1e3


def _minutes(seconds: Optional[float]) -> str:
    if seconds is None:
        return '-'
    return f'{seconds:.0f} s' if seconds < 60 else f'{seconds / 60:.1f} min'


def select_crop(gts: Dict[str, np.ndarray], size: int) -> Tuple[str, int, int]:
    """The ``size`` x ``size`` window with the most ground-truth detail (mean gradient magnitude) over all
    test images: chosen from the ground truth only, never from a model's output.

    Args:
        gts: Key -> uint8 BGR ground truth.
        size: Window side.

    Returns:
        (key, top, left).
    """
    best = (-1.0, '', 0, 0)
    for key, gt in sorted(gts.items()):
        grey = cv2.cvtColor(gt, cv2.COLOR_BGR2GRAY).astype(np.float32)
        grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        mean = cv2.boxFilter(grad, -1, (size, size), normalize=True, borderType=cv2.BORDER_CONSTANT)
        half = size // 2
        inner = mean[half:gt.shape[0] - size + half + 1, half:gt.shape[1] - size + half + 1]
        if inner.size == 0:
            continue
        y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
        if inner[y, x] > best[0]:
            best = (float(inner[y, x]), key, int(y), int(x))
    if not best[1]:
        raise ValueError(f'no test image is at least {size} pixels on each side')
    return best[1], best[2], best[3]


def comparison_figure(image_dir: Path, rows: Sequence[str], out_path: Path, scale: int) -> dict:
    """Side-by-side crops of bicubic, the models and the ground truth, with the crop's PSNR under each.

    Args:
        image_dir: Folder of ``<key>_<row>.png`` outputs and ``<key>_GT.png``.
        rows: Rows to show, in order (``GT`` last).
        out_path: PNG to write.
        scale: Scale factor (the crop is aligned to it).

    Returns:
        dict: ``key``, ``box`` (top, left, size) and ``psnr`` per row.
    """
    from basicsr.metrics import calculate_psnr
    gts = {p.name[:-len('_GT.png')]: cv2.imread(str(p)) for p in sorted(image_dir.glob('*_GT.png'))}
    side = min(min(g.shape[:2]) for g in gts.values())
    size = max(scale * 4, min(96, side // 2) // scale * scale)
    key, top, left = select_crop(gts, size)
    zoom = max(1, 192 // size)
    gt_crop = gts[key][top:top + size, left:left + size]
    panels, psnrs = [], {}
    for row in rows:
        img = cv2.imread(str(image_dir / f'{key}_{row}.png'))
        crop = img[top:top + size, left:left + size]
        big = cv2.resize(crop, (size * zoom, size * zoom), interpolation=cv2.INTER_NEAREST)
        strip = np.full((44, big.shape[1], 3), 255, np.uint8)
        cv2.putText(strip, SHORT.get(row, label(row))[:22], (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        if row != 'GT':
            psnrs[row] = float(calculate_psnr(crop, gt_crop, 0))
            cv2.putText(strip, f'{psnrs[row]:.2f} dB', (4, 37), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                        cv2.LINE_AA)
        panel = np.concatenate([big, strip], axis=0)
        panels.append(cv2.copyMakeBorder(panel, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255)))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_path), np.concatenate(panels, axis=1))
    return {'key': key, 'box': [top, left, size], 'psnr': psnrs}


def check_finite(value, where: str = 'report') -> None:
    """Raise ValueError if any number in a nested structure is NaN or infinite."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, f'{where}.{k}')
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite(v, f'{where}[{i}]')
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f'{where} is {value}')


def _pm(scores: dict, key: str, digits: int) -> str:
    std = scores.get(f'{key}_std')
    return f'{scores[key]:.{digits}f}' + (f' ± {std:.{digits}f}' if std and scores.get('seeds', 1) > 1 else '')


def _vs(scores: dict, ref: str) -> str:
    pair = scores.get(f'vs_{ref}')
    return '-' if pair is None else f"{pair['mean_db']:+.2f} ({pair['wins']}/{pair['images']})"


def _nir(scores: dict, kind: str) -> str:
    nir = scores.get(f'nir_{kind}')
    return '-' if nir is None else f"{nir['psnr']:.2f} ({-nir['loss_db']:+.2f})"


def _results_tables(report: dict) -> List[str]:
    lines = ['Mean over the test images (± the standard deviation over seeds when there are several). '
             '"vs EDSR" / "vs concat": mean per-image PSNR difference against that model on the same inputs, and '
             'on how many images the row is better. "NIR zeroed" / "NIR swapped": PSNR of the same model with its '
             'LR NIR replaced by zeros / by the NIR of another test image (change against the row); a model that '
             'loses nothing there does not use its NIR.', '']
    for protocol, by_dataset in report['results'].items():
        for dataset, by_scale in by_dataset.items():
            for scale, rows in by_scale.items():
                lines += [f'### {protocol} protocol, {dataset}, {scale} ({report["datasets"][dataset]["test_images"]} '
                          'test images)', '',
                          '| model | PSNR (dB) | SSIM | PSNR-Y (dB) | vs EDSR (dB, wins) | vs concat (dB, wins) | '
                          'NIR zeroed (dB) | NIR swapped (dB) | training |',
                          '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
                for row, r in rows.items():
                    fewer = row != 'bicubic' and r.get('seeds', 1) == 1 and report['seeds'] > 1
                    once = ' (1 seed)' if fewer else ''
                    lines.append(f"| {label(row)}{once} | {_pm(r, 'psnr', 2)} | {_pm(r, 'ssim', 4)} | {_pm(r, 'psnr_y', 2)} | "
                                 f"{_vs(r, 'EDSR')} | {_vs(r, 'ConcatNIR')} | {_nir(r, 'zero')} | {_nir(r, 'swap')} | "
                                 f"{'not trained here' if r.get('external') else _minutes(r.get('train_s'))} |")
                stereo = report['stereo'].get(f'{protocol}_{scale}')
                if stereo:
                    lines.append(f"\nCSPSR's learned CVM was pre-trained first: {stereo['iters']} iterations, "
                                 f"{_minutes(stereo['train_s'])} (not in its training time above).")
                unused = [label(row) for row, r in rows.items() if 'nir_zero' in r and r['nir_zero']['loss_db'] <= 0.05]
                if unused:
                    lines.append(f"\nLose at most 0.05 dB when their NIR is zeroed, so they do not use it here: "
                                 f"{'; '.join(unused)}.")
                lines.append('')
    return lines


def _profile_table(report: dict) -> List[str]:
    prof = report['profile']
    gpu = any('latency_gpu_s' in f for by_row in prof['scales'].values() for f in by_row.values())
    threads = f"{prof['cpu_threads']} thread" + ('s' if prof['cpu_threads'] != 1 else '')
    lines = [f"Networks as trained here, on one {prof['frame']} HR frame; CPU latency with {threads}, median of "
             f"{prof['runs']} runs; peak memory: {prof['memory']}.", '']
    figures = [f for by_row in prof['scales'].values() for f in by_row.values()]
    cpu_half = any(f.get('latency_cpu_half_s') for f in figures)
    if not cpu_half and any('latency_cpu_half_s' in f for f in figures):
        lines += ['CPU latency in half precision: not measured, this CPU has no bf16 instructions (emulated bf16 '
                  'runs slower than fp32).', '']
    for scale, rows in prof['scales'].items():
        head = ('| model | params (M) | GFLOPs | CPU latency (s) |' + (' CPU bf16 (s) |' if cpu_half else '')
                + (' GPU latency (ms) | GPU half (ms) |' if gpu else '') + ' peak memory (MB) |')
        lines += [f'**{scale}**', '', head, '|' + ' --- |' * (head.count('|') - 1)]
        for row, f in rows.items():
            half_col = f" {_fmt(f.get('latency_cpu_half_s'), 3)} |" if cpu_half else ''
            gpu_col = (f" {_fmt(_ms(f.get('latency_gpu_s')), 1)} | {_fmt(_ms(f.get('latency_gpu_half_s')), 1)} |"
                       if gpu else '')
            lines.append(f"| {label(row)} | {f['params_M']:.3f} | {f['gflops']:.1f} | {f['latency_cpu_s']:.3f} |"
                         f"{half_col}{gpu_col} {f['peak_mem_MB']:.0f} |")
        lines.append('')
    through = report.get('throughput', {}).get('rows')
    if through:
        lines += [f"**Training throughput** ({report['throughput']['scale']}; iterations per second of "
                  "`optimize_parameters` on random batches of the preset's batch and patch size, median of 24 after "
                  'warm-up; compiled: `torch.compile`, warm-up and compilation time in brackets)', '',
                  '| model | eager (it/s) | compiled (it/s) |', '| --- | --- | --- |']
        for row, modes in through.items():
            comp = modes.get('compiled')
            comp_col = f"{comp['it_s']:.2f} ({comp['warmup_s']:.0f} s)" if comp else 'not measured (--compile)'
            lines.append(f"| {label(row)} | {modes['eager']['it_s']:.2f} | {comp_col} |")
        lines.append('')
    paper = prof.get('paper_size_x4')
    if paper:
        lines += ['**x4, the paper-size networks of the option files** (EDSR-baseline, RCAN, HAT, CSPSR(); not trained '
                  'here; median of 2 runs)', '', '| model | params (M) | GFLOPs | CPU latency (s) | peak memory (MB) |',
                  '| --- | --- | --- | --- | --- |']
        lines += [f"| {label(row)} | {f['params_M']:.3f} | {f['gflops']:.1f} | {f['latency_cpu_s']:.3f} | "
                  f"{f['peak_mem_MB']:.0f} |" for row, f in paper.items()]
        lines.append('')
    return lines


def _ablation_table(report: dict) -> List[str]:
    lines = []
    for dataset, rows in report['ablation'].items():
        lines += [f'### {dataset}, x4', '', '| variant | PSNR (dB) | SSIM | PSNR-Y (dB) | training |',
                  '| --- | --- | --- | --- | --- |']
        for r in rows.values():
            lines.append(f"| {r['label']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['psnr_y']:.2f} | "
                         f"{_minutes(r.get('train_s'))} |")
        lines.append('')
    return lines


def training_pairs_note(policy: str) -> Optional[str]:
    """What the report says of the country training pairs' registration policy (None: the preset's, as before).

    Args:
        policy: ``--country-train`` (``keep``, ``skip``, ``register``) or ``'preset'``.
    """
    if policy == 'preset':
        return None
    what = {'keep': 'used as they are.', 'skip': 'left out (only registered pairs train).',
            'register': 'registered by the tool (the NIR warped onto the VIS), those it cannot register left out.'}
    return (f'Misregistered country training pairs (`--country-train {policy}`): {what[policy]} Test photographs are '
            'scored as they were taken.')


def paper_layouts(report: dict) -> List[str]:
    """The sections in the layouts of the paper's Tables 1-3 (:mod:`cspsr_arch.benchmark.paper_tables`), for the
    rows the benchmark has."""
    from cspsr_arch.benchmark.paper_tables import table1_layout, table2_layout, table3_layout
    note = ("The paper's figures come from its own protocol and test videos (see the README): printed for "
            'reference, not comparable with the columns measured here.')
    lines = []
    for title, section in (("The paper's Table 1 layout: single-image networks", table1_layout(report, label)),
                           ("The paper's Table 2 layout: prior-guided networks", table2_layout(report, label)),
                           ("The paper's Table 3 layout: ENLCN with the NIR at its input", table3_layout(report, label))):
        if section:
            lines += [f'## {title}', '', note, ''] + section
    return lines


def untrained_rows(report: dict) -> List[str]:
    """A line per protocol that trained only some of the report's models (``--protocol-models``), naming the
    others."""
    lines = []
    for protocol, subset in report.get('protocol_models', {}).items():
        left = [label(m) for m in report['models'] if m not in subset]
        if left:
            lines.append(f"Not trained under the {protocol} protocol (\"-\" in its tables): {', '.join(left)}.")
    return lines


def markdown(report: dict) -> str:
    """``report.md`` from the report dictionary."""
    b = report['budget']
    m = report['machine']
    lines = [f"# Benchmark `{report['benchmark']}` (preset `{report['preset']}`)", '',
             f"Command: `{report['command']}`  ", f"Finished {report['created']} on {m['cpus']} CPU cores ({m['torch_threads']} torch threads)"
             + (f", GPU {m['gpu']}" if m.get('gpu') else ', no GPU') + f", torch {m['torch']}.", '',
             '## Protocol', '',
             f"Every model trains on the same training split for the same budget: {b['iters']} iterations of batch "
             f"{b['batch']} with {b['gt_size']}x{b['gt_size']} HR patches (vertical flips only), Adam lr {b['lr']:g}, "
             f"{b['schedule']}, {b['pixel_loss']} pixel loss; CSPSR adds 0.1 x L_CSSC and fine-tunes its learned "
             f"cross-view matching, pre-trained without labels for {b['stereo_iters']} iterations (batch "
             f"{b['stereo_batch']}, {b['stereo_gt_size']}-pixel HR patches). Scores: PSNR/SSIM of 8-bit images on "
             'RGB and on Y (BasicSR), border = scale, mean over the test images; training times are wall times.', '']
    from cspsr_arch.data.degradation import CameraDegradation
    cam = CameraDegradation(dict(report.get('camera') or {})).resolved()  # every default spelled out, not {}
    lines.append(f"Protocols: {', '.join(report['protocols'])}. *bicubic*: the LR inputs are the bicubic downscaling of "
                 'the HR images (the paper\'s). *camera*: the LR VIS and NIR additionally carry a camera\'s degradation '
                 f'(`degradation: {json.dumps(cam)}`, cspsr_arch/data/degradation.py: low light with Poisson-Gaussian '
                 'noise on the VIS, milder noise on the NIR), drawn anew for every training sample and fixed per test '
                 'image; the ground truth is the clean HR VIS. Each model is trained under each protocol, '
                 f"{report['seeds']} time(s) with different seeds" + ''.join(
                     f"; {model} {n} time(s)" for model, n in report.get('model_seeds', {}).items()) + '.')
    lines += untrained_rows(report)
    lines.append('')
    val = report['validation']
    lines.append(f"Every model trains on the union of the data sets' training splits ({report['train_images']} "
                 f"images) less the validation scenes ({val['images']} images: {json.dumps(val['scenes'])}), scored "
                 f"every {val['every']} iterations for the learning curves; the final weights are tested (nothing is "
                 'chosen on the test images). Test splits:')
    lines.append('')
    for dataset, d in report['datasets'].items():
        lines.append(f"* **{dataset}**: {d['description']} Train: {d['train_images']} images; test: "
                     f"{', '.join(d['test_keys'])}.")
    note = training_pairs_note(report.get('country_train', 'preset'))
    if note:
        lines += ['', note]
    lines += ['', '## Networks', '']
    for row, d in report['models'].items():
        lines.append(f"* **{label(row)}** ({d['model_type']}): {d['description']}")
    for row, path in report.get('external', {}).items():
        lines.append(f'* **{row}**: `{path}`, a single-image SR checkpoint of another project (loaded by spandrel), '
                     'scored as it is: VIS only, not trained here.')
    lines += ['', '## Table 1 analog: PSNR / SSIM', ''] + _results_tables(report)
    lines += paper_layouts(report)
    lines += ['## Cost', ''] + _profile_table(report)
    if report.get('ablation'):
        lines += ['## Table 4 analog: ablations (x4)', ''] + _ablation_table(report)
    lines += ['## Learning curves', '', f"Validation PSNR against iteration (mean over seeds): "
              f"![learning curves]({report['validation']['figure']})", '']
    if report.get('figures'):
        lines += ['## Visual comparison', '']
        for dataset, fig in report['figures'].items():
            shown = ', '.join(f'{label(r)} {v:.2f} dB' for r, v in fig['psnr'].items())
            lines += [f"{dataset}, {fig['scale']}: the {fig['box'][2]}x{fig['box'][2]} HR crop of `{fig['key']}` with the "
                      f'most ground-truth detail (chosen from the ground truth only); PSNR of the crop: {shown}.', '',
                      f"![{dataset}]({fig['path']})", '']
    lines += ['## Targets', '']
    for t in report['targets']:
        lines.append(f"* {t['what']}: {t['value']} (goal {t['goal']}): **{'met' if t['met'] else 'not met'}**")
    return '\n'.join(lines) + '\n'


def write(report: dict, out_dir: Path) -> None:
    """Check that every number is finite, then write ``report.json`` and ``report.md``."""
    check_finite(report)
    (out_dir / 'report.json').write_text(json.dumps(report, indent=1) + '\n')
    (out_dir / 'report.md').write_text(markdown(report))
