"""tools/eval_disparity.py (``cspsr_arch.benchmark.disparity``): learned vs zero vs given disparity on a split and on
the Middlebury pair."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cspsr_arch.archs.cross_spectral_stereo_arch import CrossSpectralStereoNet
from cspsr_arch.benchmark import disparity
from cspsr_arch.benchmark.disparity import run_evaluation

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'stereo.pth'
    torch.save({'params': CrossSpectralStereoNet(max_disp=8).state_dict()}, path)
    opt = tmp_path / 'stereo.yml'
    opt.write_text('network_g:\n  type: CrossSpectralStereoNet\n  max_disp: 8\n')
    return path, opt


def test_errors_by_hand():
    gt = np.full((8, 8), 8.0)
    gt[0, 0] = np.nan
    err = disparity.disparity_errors(np.full((4, 4), 3.0), gt, scale=2, bad_threshold=0.5)
    assert err['rmse'] == pytest.approx(1.0) and err['epe'] == pytest.approx(1.0) and err['bad'] == 100.0


def test_report_on_a_split_and_middlebury(tmp_path, toy_split, checkpoint):
    split, _ = toy_split  # constant disparity 4 HR pixels = 1 LR pixel at x4
    out = tmp_path / 'report'
    assert run_evaluation(str(checkpoint[0]), str(checkpoint[1]), [str(split)], True, scale=4, out=str(out)) == 0
    data = json.loads((out / 'report.json').read_text())
    toy = data['sets'][str(split)]['mean']
    assert set(toy) == {'learned', 'zero', 'given'}
    assert toy['zero']['rmse'] == pytest.approx(1.0, abs=1e-3) and toy['zero']['bad'] == 0.0
    assert toy['given']['rmse'] < 1e-2
    mb = data['sets']['Middlebury motorcycle']['mean']
    # real disparities of 7-60 HR pixels: zero disparity is off by several LR pixels
    assert 3.0 < mb['zero']['rmse'] < 15.0 and mb['zero']['bad'] > 90
    assert mb['given']['rmse'] < 0.5 * mb['zero']['rmse']
    for err in [e for s in data['sets'].values() for e in s['mean'].values()]:
        assert all(np.isfinite(v) for v in err.values())
    assert '| Middlebury motorcycle (1 scenes) | learned |' in (out / 'report.md').read_text()


def test_middlebury_sample_is_a_valid_lr_pair():
    sample = disparity.middlebury_sample(4)
    assert sample['vis'].shape == (125, 185, 3) and sample['nir'].shape == (125, 185, 1)
    assert sample['gt'].shape == (500, 740) and np.isnan(sample['gt']).mean() > 0.01
    assert 1.5 < np.nanmedian(sample['gt']) / 4 < 15
    assert 0 <= sample['nir'].min() and sample['nir'].max() <= 1


def test_a_missing_checkpoint_is_a_clear_error(tmp_path, toy_split):
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'eval_disparity.py'), '--model', str(tmp_path / 'none.pth'),
                          '--split', str(toy_split[0])], capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and 'eval_disparity: error: ' in out.stderr and 'not found' in out.stderr, out.stderr
