"""Runs of the ``basicsr`` console script for the tests: a toy training options file and the command itself
(shared by the training, fault, distributed and stereo tests)."""
import os
import subprocess
import sys
from pathlib import Path

import yaml
from toy_data import dataset_opt, make_toy_split

BASICSR = str(Path(sys.executable).parent / 'basicsr')
ENV = {**os.environ, 'CUDA_VISIBLE_DEVICES': ''}


def _train_options(tmp_path: Path, total_iter: int = 1, **overrides) -> Path:
    split = tmp_path / 'data' / 'train'
    if not split.exists():
        make_toy_split(split, keys=('a', 'b', 'c'), size=48, scales=(2, ))
    train = dataset_opt(split, 2, phase='train', gt_size=32, use_hflip=True, use_vflip=True, num_worker_per_gpu=0,
                        batch_size_per_gpu=2, dataset_enlarge_ratio=1)
    val = dataset_opt(split, 2)
    for d in (train, val):
        del d['phase'], d['scale']
    opt = {
        'name': 'toy_cspsr', 'model_type': 'CSPSRModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': train, 'val': val},
        'network_g': {'type': 'CSPSR', 'num_feat': 8, 'num_dmf': 2, 'upscale': 2, 'cvm': 'given'},
        'path': {'pretrain_network_g': None, 'resume_state': None},
        'train': {
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [2], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0},
            'cssc_opt': {'type': 'CrossSpectralSpatialConsistencyLoss', 'loss_weight': 0.1},
        },
        'val': {'val_freq': 1000, 'save_img': True, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }
    for key, value in overrides.items():
        section = opt
        *parents, last = key.split(':')
        for parent in parents:
            section = section[parent]
        section[last] = value
    path = tmp_path / 'train.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def _basicsr(args, cwd):
    return subprocess.run([BASICSR, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
