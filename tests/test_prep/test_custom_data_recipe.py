"""docs/custom_data.md end to end on a few tiny generated pairs: prepare_data pairs -> create_lmdb -> basicsr train
with options/train_CSPSR_custom_cpu_x4.yml (over train_CSPSR_custom_x4.yml: its data root one option) -> basicsr
infer with the options training wrote beside the model, as the page says."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cspsr_arch.prep import commands

REPO = Path(__file__).resolve().parents[2]
BASICSR = str(Path(sys.executable).parent / 'basicsr')
ENV = {**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'OMP_NUM_THREADS': '1'}
# A tiny network and a few iterations (the recipe's options otherwise as shipped).
TINY_NET = 'network_g:\n  num_feat: 8\n  num_dmf: 1\n  max_disp: 4\n'
TINY = ['num_gpu=0', 'datasets:train:gt_size=32', 'datasets:train:batch_size_per_gpu=2',
        'datasets:train:num_worker_per_gpu=0',
        'datasets:train:dataset_enlarge_ratio=1', 'train:total_iter=2', 'logger:print_freq=1',
        'logger:save_checkpoint_freq=2', 'logger:use_tb_logger=false', 'val:val_freq=2']


def _write_pairs(folder: Path, names, seed: int) -> None:
    """Registered ``<name>_rgb.png`` / ``<name>_nir.png`` pairs of 50x66 pixels (not a multiple of 4: cropped)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for name in names:
        small = rng.random((13, 17, 3)).astype(np.float32)
        vis = np.round(cv2.resize(small, (66, 50), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)
        nir = np.round(0.6 * vis[..., 2] + 0.4 * vis[..., 1]).astype(np.uint8)
        assert cv2.imwrite(str(folder / f'{name}_rgb.png'), vis) and cv2.imwrite(str(folder / f'{name}_nir.png'), nir)


@pytest.mark.slow
def test_own_pairs_to_trained_model_and_infer(tmp_path, monkeypatch):
    _write_pairs(tmp_path / 'my_pairs' / 'train', ('a', 'b', 'c'), seed=0)
    _write_pairs(tmp_path / 'my_pairs' / 'test', ('d', ), seed=1)
    monkeypatch.chdir(tmp_path)  # the recipe's relative paths (datasets/Custom/...), as a user runs it
    for split in ('train', 'test'):  # python tools/prepare_data.py pairs ... (same entry point, in-process)
        assert commands.prepare_data(['pairs', '--root', f'my_pairs/{split}', '--out', 'datasets/Custom', '--split',
                                      split, '--scales', '4', '--n-proc', '1']) == 0
    assert commands.create_lmdb(['--input', 'datasets/Custom/train']) == 0
    options = tmp_path / 'tiny.yml'  # the shipped recipe file with a tiny network (infer reads the same file)
    options.write_text(f"base: {REPO / 'options' / 'train_CSPSR_custom_cpu_x4.yml'}\n{TINY_NET}")
    train = subprocess.run([BASICSR, 'train', '-opt', str(options),
                            '--force_yml', *TINY, 'datasets:train:dataroot=datasets/Custom/train_lmdb'],
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    log = next((tmp_path / 'experiments' / 'CSPSR_x4_Custom_cpu').glob('train_*.log')).read_text()
    assert 'iter:       2/2, lr:' in log and ' it/s, ' in log and '[eta: 0:00:00' in log
    model = tmp_path / 'experiments' / 'CSPSR_x4_Custom_cpu' / 'models' / 'net_g_latest.pth'
    assert model.is_file()
    options = tmp_path / 'experiments' / 'CSPSR_x4_Custom_cpu' / 'tiny.yml'  # what trained: bases merged
    lr = tmp_path / 'datasets' / 'Custom' / 'test' / 'LR_bicubic' / 'X4'
    infer = subprocess.run([BASICSR, 'infer', '-opt', str(options), '--model', str(model), '--vis',
                            str(lr / 'VIS' / 'd.png'), '--nir', str(lr / 'NIR' / 'd.png'), '--out', 'results/infer'],
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert infer.returncode == 0, infer.stderr[-3000:]
    outputs = list((tmp_path / 'results' / 'infer').rglob('*.png'))
    assert outputs, infer.stdout
    sr = cv2.imread(str(outputs[0]), cv2.IMREAD_UNCHANGED)
    assert sr.shape == (48, 64, 3) and np.isfinite(sr.astype(np.float64)).all() and sr.std() > 0
