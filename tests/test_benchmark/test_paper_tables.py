"""The report's sections in the paper's Table 1-3 layouts, on a made-up table whose differences are known."""
from cspsr_arch.benchmark.aggregate import paired_rows
from cspsr_arch.benchmark.report import label, paper_layouts
from cspsr_arch.benchmark.results import VIS_ONLY


def _row(*psnrs, ssim=0.7):
    images = {f'k{i}': {'psnr': p, 'ssim': ssim} for i, p in enumerate(psnrs)}
    return {'psnr': sum(psnrs) / len(psnrs), 'ssim': ssim, 'images': images}


def _report():
    table = {'bicubic': _row(20.0, 22.0), 'EDSR': _row(25.0, 27.0), 'ENLCN': _row(25.5, 27.5),
             'CSPSR': _row(25.2, 27.4), 'PASSR': _row(26.0, 27.0), 'ENLCN_NIR': _row(25.0, 28.5),
             'CSPSR_additive': _row(25.4, 27.4)}
    table['PASSR']['nir_zero'] = {'psnr': 26.0, 'ssim': 0.7, 'loss_db': 0.5}
    paired_rows(table, vis_only=VIS_ONLY)
    return {'results': {'camera': {'country': {'x4': table}}},
            'profile': {'frame': '580x428', 'scales': {'x4': {'EDSR': {'params_M': 0.233, 'gflops': 11.0}}}}}


def test_the_best_vis_only_reference_is_the_best_of_the_table():
    table = _report()['results']['camera']['country']['x4']
    pair = table['PASSR']['vs_best_vis_only']  # ENLCN (26.5) beats EDSR (26.0): 26.0-25.5 and 27.0-27.5
    assert pair == {'mean_db': 0.0, 'wins': 1, 'images': 2, 'reference': 'ENLCN'}
    assert 'vs_best_vis_only' not in table['ENLCN'] and table['EDSR']['vs_best_vis_only']['mean_db'] == -0.5
    assert table['PASSR']['vs_CSPSR']['wins'] == 1 and abs(table['PASSR']['vs_CSPSR']['mean_db'] - 0.2) < 1e-9


def test_the_three_layouts_carry_our_figures_the_differences_and_the_papers():
    text = '\n'.join(paper_layouts(_report()))
    assert "## The paper's Table 1 layout" in text and "## The paper's Table 2 layout" in text
    assert '| ENLCN | 26.50 / 0.7000 | 25.440 |' in text  # ours, then the paper's Table 1 figure
    assert '| EDSR | 0.233 / 11.0 | 1.518 / 246.6 |' in text and '| ENLCN | - | 1.536 / 86.2 |' in text
    assert '| PASSR | 26.50 / 0.7000 | 26.751 / 0.7214 |' in text
    assert '| CMSR | - | 26.040 / 0.6727 |' in text and 'Not trained in this run ("-"): NAFSSR-S; MASA-SR; CMSR; CMSR, HR NIR.' in text
    assert f"against the best VIS-only network here ({label('ENLCN')})" in text
    assert '| PASSR | +0.20 (1/2) | +0.00 (1/2) | -0.50 |' in text
    # the named CSPSR variant is a row of Table 2, with no paper figure: +0.2 and +0.0 dB against CSPSR
    assert f"| {label('CSPSR_additive')} | 26.40 / 0.7000 | - |" in text
    assert f"| {label('CSPSR_additive')} | +0.10 (1/2) | -0.10 (0/2) | - |" in text
    # Table 3: ENLCN w/ NIR - ENLCN per image: -0.5 and +1.0
    assert '| country, camera | 26.50 | 26.75 | +0.25 (1/2) | - |' in text
    assert '| paper (its test videos) | 25.600 | 25.440 | -0.160 | - |' in text


def test_sections_without_their_rows_are_left_out():
    report = _report()
    table = report['results']['camera']['country']['x4']
    for row in ('PASSR', 'ENLCN_NIR'):
        del table[row]
    text = '\n'.join(paper_layouts(report))
    assert "Table 1 layout" in text and "Table 2 layout" not in text and "Table 3 layout" not in text
