"""tools/demo.py end to end on a tiny budget: data, `basicsr train`, evaluation, table and metrics.json."""
import json
import math
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_demo_pipeline_tiny(tmp_path):
    opt = yaml.safe_load((ROOT / 'options' / 'demo_CSPSR_x4.yml').read_text())
    data = tmp_path / 'data'
    for dataset in opt['datasets'].values():
        for key, value in dataset.items():
            if isinstance(value, str) and value.startswith('datasets/demo/'):
                dataset[key] = str(data / value[len('datasets/demo/'):])
    opt['network_g'].update(num_feat=8, num_dmf=1)
    opt['train'].update(total_iter=4)
    opt['train']['scheduler']['periods'] = [4]
    opt['val']['val_freq'] = 4
    opt['logger'].update(print_freq=2, save_checkpoint_freq=4)
    (tmp_path / 'demo.yml').write_text(yaml.safe_dump(opt))
    vis_only = yaml.safe_load((ROOT / 'options' / 'demo_VISonly_x4.yml').read_text())
    assert vis_only['base'] == 'demo_CSPSR_x4.yml'
    (tmp_path / 'vis.yml').write_text(yaml.safe_dump({**vis_only, 'base': 'demo.yml'}))
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'demo.py'), '--opt', 'demo.yml', 'vis.yml', '--data',
                          str(data), '--out', 'out', '--min-gain', '-100'], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    metrics = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert set(metrics) == {'bicubic', 'CSPSR', 'CSPSR (NIR zeroed)', 'VIS-only'}
    for values in metrics.values():
        assert set(values) == {'psnr', 'ssim', 'psnr_y', 'ssim_y'} and all(math.isfinite(v) for v in values.values())
    assert 15 < metrics['bicubic']['psnr'] < 40 and 0 < metrics['bicubic']['ssim'] < 1
    assert 'CSPSR - VIS-only' in out.stdout and 'CSPSR - CSPSR (NIR zeroed)' in out.stdout
    assert 'metrics.json' in out.stdout
    # --compile auto: a 4-iteration run is timed eager only (too short for compiling to pay) and trained eager
    training = json.loads((tmp_path / 'out' / 'training.json').read_text())
    assert set(training) == {'CSPSR', 'VIS-only'}
    for figures in training.values():
        assert figures['mode'] == 'eager' and figures['compiled_it_s'] is None and figures['eager_it_s'] > 0
        assert figures['train_s'] > 0
    images = sorted(p.name for p in (tmp_path / 'out' / 'visualization' / 'demo_test').glob('*.png'))
    assert images == [f'{key}_{row}.png' for key in ('camera', 'motorcycle')
                      for row in ('CSPSR', 'GT', 'VIS-only', 'bicubic')]
    for name in (opt['name'], vis_only['name']):
        assert (tmp_path / 'experiments' / name / 'models' / 'net_g_latest.pth').is_file()
    # the gate: the exit status is 1 when CSPSR does not beat bicubic by --min-gain
    gate = subprocess.run([sys.executable, str(ROOT / 'tools' / 'demo.py'), '--opt', 'demo.yml', '--data', str(data),
                           '--out', 'out', '--min-gain', '100'], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert gate.returncode == 1 and 'less than the 100.00 dB expected' in gate.stdout


def test_demo_trains_the_way_expected_to_finish_first():
    from cspsr_arch.benchmark.demo import choose_mode
    # 2500 iterations: eager 10 it/s = 250 s; compiled 17 it/s = 147 s + 88 s compiling = 235 s
    assert choose_mode(2500, 10.0, {'it_s': 17.0, 'warmup_s': 88.0}) == 'compiled'
    # 1000 iterations: eager 100 s; compiled 59 s + 88 s = 147 s
    assert choose_mode(1000, 10.0, {'it_s': 17.0, 'warmup_s': 88.0}) == 'eager'
    # compiled steps slower than eager ones never pay
    assert choose_mode(10**6, 10.0, {'it_s': 9.0, 'warmup_s': 0.0}) == 'eager'
    assert choose_mode(2500, 10.0, None) == 'eager'  # not probed (short run, or no compiler)
