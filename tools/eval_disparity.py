"""Accuracy of CSPSR's cross-view matching: learned vs zero vs given disparity (the paper's Table 5 spirit).

The learned disparity comes from a ``CrossSpectralStereoNet`` checkpoint (``CrossSpectralStereoModel``)
or from a CSPSR checkpoint with ``cvm: learned``; it is predicted from the LR VIS/NIR pair, as inside
CSPSR. Each disparity is brought to the HR grid (``upscale_disparity``) and compared with the HR
ground truth where it is finite:

* ``learned``: the network's left disparity;
* ``zero``: no cross-view matching (what ``cvm: none`` assumes);
* ``given``: the LR disparity a data set provides (``LR_bicubic/X<s>/DISP_L``), i.e. what ``cvm: given``
  uses; its error is only the loss of resolution.

Errors are in LR pixels (the network's unit; times the scale for HR pixels): RMSE, mean absolute
error (EPE) and the bad-pixel rate (share of pixels off by more than ``--bad-threshold`` LR pixels).

Test sets: a split in the canonical layout (``--split``, needs ``HR/DISP_L``), and with ``--middlebury``
the Middlebury motorcycle pair shipped with scikit-image, with its real ground truth: the left
photograph is the VIS view and the right one is rendered as NIR by the synthetic set's spectral model.

Usage::

    python tools/eval_disparity.py --model experiments/CrossSpectralStereo_x4_Synthetic/models/net_g_latest.pth \\
        -opt options/train_disparity_synthetic_x4.yml --split datasets/Synthetic/test --scale 4 --middlebury \\
        [--out results/eval_disparity]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np
import torch

PathLike = str
METHODS = ('learned', 'zero', 'given')


def build_stereo_net(model_path: PathLike, opt_path: Optional[PathLike] = None, device: str = 'cpu'):
    """The ``CrossSpectralStereoNet`` of a checkpoint (options from ``network_g`` of ``opt_path``, if given)."""
    import cspsr_arch  # noqa: F401  (registers the archs)
    from cspsr_arch.archs.cross_spectral_stereo_arch import CrossSpectralStereoNet
    from cspsr_arch.models.stereo_utils import load_stereo_weights
    from cspsr_arch.options import load_options
    kwargs = {}
    if opt_path is not None:
        net_opt = dict(load_options(opt_path)['network_g'])
        if net_opt.get('type') == 'CSPSR':
            if net_opt.get('cvm', 'learned') != 'learned':
                raise SystemExit(f'{opt_path}: network_g has cvm: {net_opt["cvm"]}, no learned disparity to evaluate.')
            net_opt = {k: net_opt[k] for k in ('num_in_ch', 'min_disp', 'max_disp') if k in net_opt}
        else:
            net_opt.pop('type', None)
        kwargs = net_opt
    net = CrossSpectralStereoNet(**kwargs)
    load_stereo_weights(net, str(model_path))
    return net.to(device).eval()


def _read(path: Path, kind: str) -> np.ndarray:
    from cspsr_arch.data.image_io import decode
    data = path.read_bytes() if path.is_file() else None
    return decode(data, str(path), kind)


def split_samples(split: PathLike, scale: int) -> Iterator[Tuple[str, Dict[str, np.ndarray]]]:
    """(key, sample) of a canonical split: ``vis``/``nir`` LR inputs (float32 HWC, VIS in RGB order),
    ``given`` (LR disparity or None) and ``gt`` (HR disparity)."""
    split = Path(split)
    lr = split / 'LR_bicubic' / f'X{scale}'
    gt_dir = split / 'HR' / 'DISP_L'
    if not gt_dir.is_dir():
        raise SystemExit(f'{gt_dir} not found: the split needs HR ground-truth disparity (HR/DISP_L).')
    keys = sorted(p.stem for p in gt_dir.glob('*.png'))
    if not keys:
        raise SystemExit(f'{gt_dir} holds no PNG disparity maps.')
    for key in keys:
        given = lr / 'DISP_L' / f'{key}.png'
        yield key, {
            'vis': _read(lr / 'VIS' / f'{key}.png', 'vis')[..., ::-1],
            'nir': _read(lr / 'NIR' / f'{key}.png', 'nir'),
            'given': _read(given, 'disp')[..., 0] if given.is_file() else None,
            'gt': _read(gt_dir / f'{key}.png', 'disp')[..., 0],
        }


def middlebury_sample(scale: int) -> Dict[str, np.ndarray]:
    """The scikit-image Middlebury motorcycle pair as a (VIS left, NIR-like right) sample at ``scale``."""
    from basicsr.utils.matlab_functions import imresize
    from skimage import data as skdata

    from cspsr_arch.prep.synthetic.scenes import fill_background
    from cspsr_arch.prep.synthetic.spectra import nir_response
    folder = Path(skdata.__file__).parent
    left = cv2.imread(str(folder / 'motorcycle_left.png'))[..., ::-1].astype(np.float32) / 255
    right = cv2.imread(str(folder / 'motorcycle_right.png'))[..., ::-1].astype(np.float32) / 255
    gt = np.load(folder / 'motorcycle_disp.npz')['arr_0'].astype(np.float32)
    h, w = (gt.shape[0] // scale) * scale, (gt.shape[1] // scale) * scale
    left, right, gt = left[:h, :w], right[:h, :w], gt[:h, :w]
    nir = np.round(nir_response(right) * 255) / 255  # stored as 8 bits, like every NIR image
    given = cv2.resize(fill_background(gt, np.isfinite(gt)), (w // scale, h // scale), interpolation=cv2.INTER_AREA)
    return {
        'vis': np.clip(imresize(left, 1 / scale), 0, 1),
        'nir': np.clip(imresize(nir[..., None].astype(np.float32), 1 / scale), 0, 1).reshape(h // scale, w // scale, 1),
        'given': given / scale,
        'gt': np.where(np.isfinite(gt), gt, np.nan),
    }


def disparity_errors(pred_lr: np.ndarray, gt_hr: np.ndarray, scale: int, bad_threshold: float) -> Dict[str, float]:
    """RMSE, EPE and bad-pixel rate (%) in LR pixels of an LR disparity against the HR ground truth."""
    from cspsr_arch.archs.warp import upscale_disparity
    up = upscale_disparity(torch.from_numpy(np.ascontiguousarray(pred_lr, np.float32))[None, None],
                           tuple(gt_hr.shape))[0, 0].numpy()
    valid = np.isfinite(gt_hr)
    err = np.abs(up - gt_hr)[valid] / scale
    return {'rmse': float(np.sqrt(np.mean(err**2))), 'epe': float(np.mean(err)),
            'bad': float(100 * np.mean(err > bad_threshold))}


def evaluate(net, samples: List[Tuple[str, Dict[str, np.ndarray]]], scale: int, bad_threshold: float = 1.0,
             device: str = 'cpu') -> Dict[str, Dict[str, Dict[str, float]]]:
    """Per scene and method (learned, zero, given): errors (see :func:`disparity_errors`)."""
    results = {}
    for key, sample in samples:
        vis = torch.from_numpy(np.ascontiguousarray(sample['vis'].transpose(2, 0, 1)))[None].float().to(device)
        nir = torch.from_numpy(np.ascontiguousarray(sample['nir'].transpose(2, 0, 1)))[None].float().to(device)
        with torch.no_grad():
            learned = net(vis, nir).disp_l[0, 0].cpu().numpy()
        preds = {'learned': learned, 'zero': np.zeros_like(learned), 'given': sample['given']}
        results[key] = {m: disparity_errors(p, sample['gt'], scale, bad_threshold)
                        for m, p in preds.items() if p is not None}
    return results


def summarise(results: Dict[str, Dict[str, Dict[str, float]]]) -> Dict[str, Dict[str, float]]:
    """Mean of each error over the scenes, per method."""
    methods = [m for m in METHODS if all(m in r for r in results.values())]
    return {m: {k: float(np.mean([r[m][k] for r in results.values()])) for k in ('rmse', 'epe', 'bad')}
            for m in methods}


def report(sets: Dict[str, Dict], scale: int, bad_threshold: float) -> str:
    """Markdown table: one row per test set and method."""
    lines = [f'Disparity error in LR pixels (x{scale}; HR pixels = LR pixels x {scale}); bad = % of pixels off by '
             f'more than {bad_threshold:g} LR pixel', '', '| test set | method | RMSE | EPE | bad (%) |',
             '| --- | --- | --- | --- | --- |']
    for name, res in sets.items():
        for method, err in res['mean'].items():
            lines.append(f"| {name} ({len(res['scenes'])} scenes) | {method} | {err['rmse']:.3f} | {err['epe']:.3f} "
                         f"| {err['bad']:.1f} |")
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True, help='CrossSpectralStereoNet or CSPSR (cvm: learned) checkpoint')
    parser.add_argument('-opt', default=None, help='option file whose network_g built the checkpoint')
    parser.add_argument('--split', action='append', default=[], help='canonical split with HR/DISP_L (repeatable)')
    parser.add_argument('--middlebury', action='store_true', help='also the Middlebury motorcycle pair')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--bad-threshold', type=float, default=1.0, help='in LR pixels')
    parser.add_argument('--out', default='results/eval_disparity', help='report.md and report.json go here')
    args = parser.parse_args(argv)
    if not args.split and not args.middlebury:
        parser.error('give --split and/or --middlebury')
    from cspsr_arch.errors import CSPSRInputError
    try:
        net = build_stereo_net(args.model, args.opt)
        sets = {}
        for split in args.split:
            res = evaluate(net, list(split_samples(split, args.scale)), args.scale, args.bad_threshold)
            sets[os.path.normpath(split)] = {'scenes': res, 'mean': summarise(res)}
        if args.middlebury:
            res = evaluate(net, [('motorcycle', middlebury_sample(args.scale))], args.scale, args.bad_threshold)
            sets['Middlebury motorcycle'] = {'scenes': res, 'mean': summarise(res)}
    except CSPSRInputError as err:
        print(f'eval_disparity: error: {err}', file=sys.stderr)
        return 2
    table = report(sets, args.scale, args.bad_threshold)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'report.md').write_text(table)
    (out / 'report.json').write_text(json.dumps({'model': str(args.model), 'scale': args.scale,
                                                 'bad_threshold': args.bad_threshold, 'sets': sets}, indent=2))
    print(table)
    print(f'written: {out / "report.md"}, {out / "report.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
