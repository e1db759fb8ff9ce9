#!/usr/bin/env python
"""``make demo``: generate the embedded synthetic data, train a small CSPSR on the CPU, evaluate it.

Steps (each reuses what an earlier run finished):

1. ``tools/make_synthetic_rgbnir.py`` writes the cross-spectral stereo set to ``datasets/demo``;
2. ``basicsr train -opt options/demo_CSPSR_x4.yml --auto_resume`` trains (BasicSR's own pipeline);
3. the trained model and bicubic interpolation are evaluated on the test split with BasicSR's
   ``calculate_psnr`` / ``calculate_ssim`` (RGB, border = scale), images saved;
4. a table is printed and written to ``results/demo/metrics.json``.

Usage: ``python tools/demo.py [--opt options/demo_CSPSR_x4.yml] [--data datasets/demo] [--out results/demo]``.
"""
import argparse
import importlib.util
import json
import sys
import time
from os import path as osp
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f'cspsr_tool_{name}', ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ensure_data(data_dir: Path, scale: int, seed: int) -> None:
    """Generate the synthetic set unless both splits are already complete."""
    if all((data_dir / split / 'meta_info.txt').is_file() for split in ('train', 'test')):
        print(f'[demo] data: reusing {data_dir}')
        return
    print(f'[demo] data: generating the synthetic cross-spectral stereo set in {data_dir} ...')
    keys = _load_tool('make_synthetic_rgbnir').make_dataset(str(data_dir), scales=(scale, ), seed=seed, overwrite=True)
    print(f"[demo] data: {len(keys['train'])} train / {len(keys['test'])} test scenes")


def train(opt_file: Path, compile_net: bool = False) -> float:
    """Run ``basicsr train`` (resuming a finished or interrupted earlier run); return the wall time."""
    from cspsr_arch.cli import run
    start = time.time()
    run('train', ['-opt', str(opt_file), '--auto_resume'] + (['--force_yml', 'train:compile=true'] if compile_net else []))
    return time.time() - start


def _metrics(sr: np.ndarray, gt: np.ndarray, crop: int) -> Dict[str, float]:
    from basicsr.metrics import calculate_psnr, calculate_ssim
    return {'psnr': float(calculate_psnr(sr, gt, crop)), 'ssim': float(calculate_ssim(sr, gt, crop))}


def evaluate(opt_file: Path, out_dir: Path) -> Dict[str, Dict[str, float]]:
    """Evaluate bicubic and the trained CSPSR on the options' ``val`` set; save images under ``out_dir``."""
    import torch
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.models import build_model
    from basicsr.utils import imwrite, tensor2img
    from basicsr.utils.matlab_functions import imresize
    from basicsr.utils.options import yaml_load

    from cspsr_arch.options import check_options

    opt = yaml_load(str(opt_file))
    scale = opt['scale']
    ckpt = Path.cwd() / 'experiments' / opt['name'] / 'models' / 'net_g_latest.pth'  # where `basicsr train` wrote
    opt.update(is_train=False, dist=False, rank=0, world_size=1, num_gpu=1 if torch.cuda.is_available() else 0)
    opt['path'] = {'pretrain_network_g': str(ckpt), 'strict_load_g': True, 'results_root': str(out_dir),
                   'log': str(out_dir), 'visualization': str(out_dir / 'visualization')}
    val_opt = dict(opt['datasets']['val'], phase='val', scale=scale)
    opt['datasets'] = {'val': val_opt}
    opt['val'] = {'save_img': True, 'suffix': 'CSPSR', 'metrics': opt['val']['metrics']}
    check_options(opt)

    loader = build_dataloader(build_dataset(val_opt), val_opt, num_gpu=opt['num_gpu'], dist=False)
    model = build_model(opt)
    model.validation(loader, current_iter='demo', tb_logger=None, save_img=True)
    results = {'bicubic': {'psnr': 0.0, 'ssim': 0.0}, 'CSPSR': dict(model.metric_results)}
    for data in loader:
        lq = data['lq'][0].numpy().transpose(1, 2, 0)[..., ::-1]  # RGB CHW -> BGR HWC
        bicubic = np.clip(np.round(imresize(np.ascontiguousarray(lq), scale) * 255), 0, 255).astype(np.uint8)
        gt = tensor2img(data['gt'])
        for key, value in _metrics(bicubic, gt, scale).items():
            results['bicubic'][key] += value / len(loader)
        name = osp.splitext(osp.basename(data['gt_path'][0]))[0]
        imwrite(bicubic, str(out_dir / 'visualization' / val_opt['name'] / f'{name}_bicubic.png'))
    return results


def print_table(results: Dict[str, Dict[str, float]], lines: List[str]) -> None:
    """Print the PSNR/SSIM table and the locations of the outputs."""
    print('\n' + '=' * 60)
    print(f"{'method':<10} {'PSNR (dB)':>10} {'SSIM':>8}")
    for name, values in results.items():
        print(f"{name:<10} {values['psnr']:>10.2f} {values['ssim']:>8.4f}")
    print('=' * 60)
    for line in lines:
        print(line)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; returns 0, or 1 if CSPSR does not beat bicubic by ``--min-gain`` dB."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--opt', default='options/demo_CSPSR_x4.yml', help='demo training options')
    parser.add_argument('--data', default='datasets/demo', help='where the synthetic data set goes')
    parser.add_argument('--out', default='results/demo', help='where images and metrics.json go')
    parser.add_argument('--seed', type=int, default=0, help='seed of the synthetic data set')
    parser.add_argument('--min-gain', type=float, default=1.0,
                        help='exit with status 1 when CSPSR beats bicubic by less than this (dB)')
    parser.add_argument('--compile', action='store_true', help='train through torch.compile (train: compile: true)')
    args = parser.parse_args(argv)
    start = time.time()
    import cspsr_arch  # noqa: F401  (registration)
    from basicsr.utils.options import yaml_load
    opt_file, data_dir, out_dir = Path(args.opt), Path(args.data), Path(args.out)
    opt = yaml_load(str(opt_file))
    ensure_data(data_dir, opt['scale'], args.seed)
    train_time = train(opt_file, args.compile)
    results = evaluate(opt_file, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'metrics.json').write_text(json.dumps(results, indent=2) + '\n')
    exp = Path('experiments') / opt['name']
    gain = results['CSPSR']['psnr'] - results['bicubic']['psnr']
    print_table(results, [
        f"Demo test split: {data_dir / 'test'} (x{opt['scale']}, RGB, border {opt['scale']}); "
        f'CSPSR - bicubic = {gain:+.2f} dB',
        f'metrics:    {out_dir / "metrics.json"}',
        f'images:     {out_dir / "visualization"}/ (CSPSR and bicubic)',
        f'checkpoint: {exp / "models" / "net_g_latest.pth"}',
        f'train log:  {exp}/train_*.log  (training {train_time / 60:.1f} min; demo total '
        f'{(time.time() - start) / 60:.1f} min)',
    ])
    if gain < args.min_gain:
        print(f'[demo] CSPSR beats bicubic by {gain:.2f} dB, less than the {args.min_gain:.2f} dB expected.')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
