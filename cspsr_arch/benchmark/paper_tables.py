"""The report's tables in the layouts of the CSPSR paper's Tables 1, 2 and 3, with the paper's own figures beside
ours in labelled columns.

The paper's figures come from its protocol (x4 and x2 on its RGB-NIR stereo test videos, NIRScene and RANUS;
README "Results" describes why they are not comparable with this project's splits): they are printed for
reference, never as targets. This module only lays out what :mod:`cspsr_arch.benchmark.results` measured.
"""
from typing import Dict, List, Optional, Sequence, Tuple

from cspsr_arch.benchmark.aggregate import paired

PAPER_TABLE1: Dict[str, Dict[str, float]] = {
    'x4': {'bicubic': 22.056, 'EDSR': 24.928, 'RCAN': 25.245, 'SMSR': 25.471, 'NLSN': 25.377, 'ENLCN': 25.440,
           'HAT': 25.560, 'CSPSR': 27.765},
    'x2': {'bicubic': 26.484, 'EDSR': 29.592, 'RCAN': 30.959, 'SMSR': 30.176, 'NLSN': 30.296, 'ENLCN': 30.288,
           'HAT': 30.777, 'CSPSR': 32.212},
}
"""The paper's Table 1: PSNR (dB) on its RGB-NIR stereo test videos."""
PAPER_COST: Dict[str, Tuple[float, float]] = {
    'EDSR': (246.586, 1.518), 'RCAN': (247.592, 15.592), 'SMSR': (2.710, 1.005), 'NLSN': (36.030, 1.853),
    'ENLCN': (86.248, 1.536), 'HAT': (65.758, 9.211), 'CSPSR': (51.059, 1.298)}
"""The footer of the paper's Table 1: (GFLOPs, parameters in M) of its networks, at its own frame size."""
PAPER_TABLE2: Dict[str, Tuple[float, float]] = {
    'PASSR': (26.751, 0.7214), 'NAFSSR': (27.529, 0.7326), 'MASASR': (25.965, 0.6677), 'CMSR': (26.04, 0.6727),
    'CMSR_HRNIR': (27.815, 0.7411), 'CSPSR': (27.765, 0.7494)}
"""The paper's Table 2, x4 on its RGB-NIR stereo test videos: (PSNR, SSIM)."""
PAPER_TABLE3: Dict[str, float] = {'ENLCN': 25.600, 'ENLCN_NIR': 25.440}
"""The paper's Table 3, x4, mean over its test videos: PSNR of ENLCN and ENLCN w/ NIR."""

TABLE1_ROWS = ('bicubic', 'EDSR', 'RCAN', 'SMSR', 'NLSN', 'ENLCN', 'HAT', 'CSPSR')
TABLE2_ROWS = ('PASSR', 'NAFSSR', 'MASASR', 'CMSR', 'CMSR_HRNIR', 'CSPSR', 'CSPSR_HRNIR', 'CSPSR_HRNIR_align',
               'CSPSR_HRNIR_path', 'CSPSR_additive', 'CSPSR_vis_block')
TABLE3_ROWS = ('ENLCN', 'ENLCN_NIR')


def _columns(report: dict, scale: str) -> List[Tuple[str, str, dict]]:
    """(protocol, data set, rows) of every test table at ``scale``."""
    return [(protocol, dataset, by_scale[scale]) for protocol, by_dataset in report['results'].items()
            for dataset, by_scale in by_dataset.items() if scale in by_scale]


def _score(rows: dict, row: str) -> str:
    r = rows.get(row)
    return '-' if r is None else f"{r['psnr']:.2f} / {r['ssim']:.4f}"


def _pair(rows: dict, row: str, key: str) -> str:
    pair = (rows.get(row) or {}).get(key)
    return '-' if pair is None else f"{pair['mean_db']:+.2f} ({pair['wins']}/{pair['images']})"


def _zeroed(rows: dict, row: str) -> str:
    nir = (rows.get(row) or {}).get('nir_zero')
    return '-' if nir is None else f"{-nir['loss_db']:+.2f}"


def _table(head: Sequence[str], body: List[List[str]]) -> List[str]:
    return ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)] + ['| ' + ' | '.join(r) + ' |' for r in body]


def _present(report: dict, scale: str, rows: Sequence[str]) -> List[str]:
    have = {row for _, _, table in _columns(report, scale) for row in table}
    return [row for row in rows if row in have]


def table1_layout(report: dict, label) -> List[str]:
    """The paper's Table 1 layout: every single-image row (and CSPSR) per scale, our PSNR / SSIM per protocol and
    data set, the paper's PSNR in a labelled column, and a cost footer (ours as trained here, the paper's)."""
    lines: List[str] = []
    for scale in sorted({s for _, by_d in report['results'].items() for by_s in by_d.values() for s in by_s}):
        rows = _present(report, scale, TABLE1_ROWS)
        if len(rows) < 3:
            continue
        columns = _columns(report, scale)
        head = ['model'] + [f'{dataset}, {protocol}' for protocol, dataset, _ in columns] + ['paper (RGB-NIR stereo)']
        body = [[label(row)] + [_score(t, row) for _, _, t in columns]
                + [f"{PAPER_TABLE1.get(scale, {}).get(row, float('nan')):.3f}" if row in PAPER_TABLE1.get(scale, {})
                   else '-'] for row in rows]
        lines += [f'**{scale}**, PSNR (dB) / SSIM', ''] + _table(head, body) + ['']
        cost = report.get('profile', {}).get('scales', {}).get(scale, {})
        footer = [[label(row), _cost(cost.get(row)), _paper_cost(row)] for row in rows if row != 'bicubic']
        lines += [f'Cost footer, {scale}: parameters (M) / GFLOPs of the networks as trained here (on the '
                  f"benchmark's {report.get('profile', {}).get('frame', '')} frame) and the paper's (its own sizes and "
                  'frame).', ''] + _table(['model', 'here: params (M) / GFLOPs', 'paper: params (M) / GFLOPs'],
                                          footer) + ['']
    return lines


def _cost(figures: Optional[dict]) -> str:
    return '-' if not figures else f"{figures['params_M']:.3f} / {figures['gflops']:.1f}"


def _paper_cost(row: str) -> str:
    return '-' if row not in PAPER_COST else f'{PAPER_COST[row][1]:.3f} / {PAPER_COST[row][0]:.1f}'


def table2_layout(report: dict, label) -> List[str]:
    """The paper's Table 2 layout (x4): the prior-guided networks and CSPSR, our PSNR / SSIM per protocol and data
    set with the paper's in a labelled column; then their paired per-image differences against CSPSR and against
    the best VIS-only network of the same table, and their change with the NIR zeroed."""
    rows = _present(report, 'x4', TABLE2_ROWS)
    if not any(row in PAPER_TABLE2 and row != 'CSPSR' for row in rows):
        return []
    columns = _columns(report, 'x4')
    head = ['model'] + [f'{dataset}, {protocol}' for protocol, dataset, _ in columns] + ['paper (RGB-NIR stereo)']
    # every row of the paper's table keeps its line, "-" where this run has not trained it
    shown = [row for row in TABLE2_ROWS if row in rows or row in PAPER_TABLE2]
    body = [[label(row)] + [_score(t, row) for _, _, t in columns]
            + ([f'{PAPER_TABLE2[row][0]:.3f} / {PAPER_TABLE2[row][1]:.4f}'] if row in PAPER_TABLE2 else ['-'])
            for row in shown]
    missing = [label(row) for row in shown if row not in rows]
    lines = ['**x4**, PSNR (dB) / SSIM', ''] + _table(head, body) + ['']
    if missing:
        lines += [f"Not trained in this run (\"-\"): {'; '.join(missing)}.", '']
    for protocol, dataset, table in columns:
        best = next((r['vs_best_vis_only']['reference'] for r in table.values() if 'vs_best_vis_only' in r), None)
        lines += [f'{dataset}, {protocol}: mean per-image PSNR difference (dB, images better) against CSPSR and '
                  f"against the best VIS-only network here ({label(best) if best else 'none'}); PSNR change with "
                  'the NIR zeroed.', '']
        lines += _table(['model', 'vs CSPSR', 'vs best VIS-only', 'NIR zeroed (dB)'],
                        [[label(row), _pair(table, row, 'vs_CSPSR'), _pair(table, row, 'vs_best_vis_only'),
                          _zeroed(table, row)] for row in rows if row in table]) + ['']
    return lines


def table3_layout(report: dict, label) -> List[str]:
    """The paper's Table 3 pair (x4): ENLCN and ENLCN w/ NIR, the paired difference of the NIR row against ENLCN,
    and the paper's figures."""
    rows = _present(report, 'x4', TABLE3_ROWS)
    if len(rows) < 2:
        return []
    body = []
    for protocol, dataset, table in _columns(report, 'x4'):
        if not all(row in table for row in rows):
            continue
        nir, vis = table['ENLCN_NIR'], table['ENLCN']
        if 'images' in nir and 'images' in vis:
            pair = paired(nir['images'], vis['images'])
            diff = f"{pair['mean_db']:+.2f} ({pair['wins']}/{pair['images']})"
        else:
            diff = f"{nir['psnr'] - vis['psnr']:+.2f}"
        body.append([f'{dataset}, {protocol}', f"{vis['psnr']:.2f}", f"{nir['psnr']:.2f}", diff,
                     _zeroed(table, 'ENLCN_NIR')])
    body.append(['paper (its test videos)', f"{PAPER_TABLE3['ENLCN']:.3f}", f"{PAPER_TABLE3['ENLCN_NIR']:.3f}",
                 f"{PAPER_TABLE3['ENLCN_NIR'] - PAPER_TABLE3['ENLCN']:+.3f}", '-'])
    return _table(['test set', f"{label('ENLCN')} (dB)", f"{label('ENLCN_NIR')} (dB)", 'ENLCN w/ NIR - ENLCN (dB, images better)',
                   'NIR zeroed (dB)'], body) + ['']
