"""--protocol-models: a protocol that trains and tests only some of the benchmark's rows (the slow peers under
one protocol), planned, refused when it names what the benchmark does not have, and named in the report."""
import subprocess
import sys
from pathlib import Path

import pytest
from toy_data import make_toy_split

from cspsr_arch.benchmark.report import label, untrained_rows

ROOT = Path(__file__).resolve().parents[2]
MODELS = ['EDSR', 'CSPSR', 'NLSN', 'PASSR']


def test_a_protocol_plans_only_its_models_and_the_others_keep_all(tmp_path):
    from cspsr_arch.benchmark.presets import CPU
    from cspsr_arch.benchmark.runs import plan
    make_toy_split(tmp_path / 'train', scales=(4, ))
    runs = plan(ROOT / 'options', tmp_path / 'train', CPU, MODELS, ablations=False, protocols=('bicubic', 'camera'),
                protocol_models={'camera': ['PASSR', 'EDSR']})
    assert list(runs.table['bicubic'][4]) == MODELS
    assert list(runs.table['camera'][4]) == ['EDSR', 'PASSR']  # in the order of the models
    names = {r.name for r in runs.runs}
    # no CSPSR under the camera protocol, so no disparity pre-training for it either
    assert names == {'stereo_x4', 'EDSR_x4', 'CSPSR_x4', 'NLSN_x4', 'PASSR_x4', 'EDSR_x4_camera', 'PASSR_x4_camera'}
    merged = runs.networks()[4]  # cost and options: every row once
    assert list(merged) == MODELS and merged['NLSN'][0].name == 'NLSN_x4'
    swapped = plan(ROOT / 'options', tmp_path / 'train', CPU, MODELS, ablations=False,
                   protocols=('bicubic', 'camera'), protocol_models={'bicubic': ['EDSR']}).networks()[4]
    assert set(swapped) == set(MODELS) and swapped['NLSN'][0].name == 'NLSN_x4_camera'


@pytest.mark.parametrize('bad', [{'camera': ['RCAN']}, {'camera': []}, {'bicubic': ['EDSR']}])
def test_a_protocol_list_outside_the_benchmark_is_refused(tmp_path, bad):
    from cspsr_arch.benchmark.presets import CPU
    from cspsr_arch.benchmark.runs import plan
    make_toy_split(tmp_path / 'train', scales=(4, ))
    with pytest.raises(ValueError, match='protocol must be some of'):
        plan(ROOT / 'options', tmp_path / 'train', CPU, ['EDSR', 'CSPSR'], ablations=False, protocols=('camera', ),
             protocol_models=bad)


def test_the_command_line_refuses_a_protocol_it_does_not_run(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'benchmark.py'), '--preset', 'quick', '--out',
                           str(tmp_path / 'out'), '--models', 'EDSR', 'CSPSR', '--protocol', 'bicubic',
                           '--protocol-models', 'camera=EDSR'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--protocol-models 'camera=EDSR'" in proc.stderr
    assert not (tmp_path / 'out').exists()


def test_the_report_names_the_rows_a_protocol_did_not_train():
    report = {'models': {m: {} for m in MODELS}, 'protocol_models': {'camera': ['EDSR', 'CSPSR']}}
    assert untrained_rows(report) == [f'Not trained under the camera protocol ("-" in its tables): '
                                      f'{label("NLSN")}, {label("PASSR")}.']
    assert untrained_rows({'models': report['models'], 'protocol_models': {}}) == []
    assert untrained_rows({'models': report['models']}) == []  # a report written before the option
