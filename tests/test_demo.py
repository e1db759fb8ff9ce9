"""tools/demo.py end to end on a tiny budget: data, `basicsr train`, evaluation, table and metrics.json."""
import json
import math
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


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
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'demo.py'), '--opt', 'demo.yml', '--data', str(data),
                          '--out', 'out', '--min-gain', '-100'], cwd=tmp_path, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    metrics = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert set(metrics) == {'bicubic', 'CSPSR'}
    for values in metrics.values():
        assert set(values) == {'psnr', 'ssim'} and all(math.isfinite(v) for v in values.values())
    assert 15 < metrics['bicubic']['psnr'] < 40 and 0 < metrics['bicubic']['ssim'] < 1
    assert 'bicubic' in out.stdout and 'CSPSR' in out.stdout and 'metrics.json' in out.stdout
    images = sorted(p.name for p in (tmp_path / 'out' / 'visualization' / 'demo_test').glob('*.png'))
    assert images == ['camera_CSPSR.png', 'camera_bicubic.png', 'motorcycle_CSPSR.png', 'motorcycle_bicubic.png']
    assert (tmp_path / 'experiments' / opt['name'] / 'models' / 'net_g_latest.pth').is_file()
