"""Accuracy of CSPSR's cross-view matching: learned vs zero vs given disparity (the paper's Table 5 spirit),
the work of ``tools/eval_disparity.py``.

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

The command line: ``tools/eval_disparity.py`` (``--model``, ``-opt``, ``--split``, ``--middlebury``, ``--out``).
"""
from __future__ import annotations

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
    from cspsr_arch.engine.options import load_options
    from cspsr_arch.models.stereo_utils import load_stereo_weights
    kwargs = {}
    if opt_path is not None:
        net_opt = dict(load_options(opt_path)['network_g'])
        if net_opt.get('type') != 'CrossSpectralStereoNet':  # an SR network with the learned CVM in front
            from cspsr_arch.benchmark.runs import network_cvm
            if network_cvm(net_opt) != 'learned':
                raise SystemExit(f'{opt_path}: network_g ({net_opt.get("type")}) has cvm: {network_cvm(net_opt)}, no '
                                 'learned disparity to evaluate.')
            net_opt = {k: net_opt[k] for k in ('num_in_ch', 'min_disp', 'max_disp') if k in net_opt}
        else:
            net_opt.pop('type', None)
        kwargs = net_opt
    net = CrossSpectralStereoNet(**kwargs)
    load_stereo_weights(net, str(model_path))
    return net.to(device).eval()


def _read(path: Path, kind: str) -> np.ndarray:
    from cspsr_arch.image_io import decode
    data = path.read_bytes() if path.is_file() else None
    return decode(data, str(path), kind)


def split_samples(split: PathLike, scale: int) -> Iterator[Tuple[str, Dict[str, np.ndarray]]]:
    """(key, sample) of a canonical split: ``vis``/``nir`` LR inputs (float32 HWC, VIS in RGB order),
    ``given`` (LR disparity or None) and ``gt`` (HR disparity)."""
    from cspsr_arch.prep.split import IMAGE_EXT, image_path, stream_dir
    gt_dir = stream_dir(split, 'DISP_L')
    if not gt_dir.is_dir():
        raise SystemExit(f'{gt_dir} not found: the split needs HR ground-truth disparity (HR/DISP_L).')
    keys = sorted(p.stem for p in gt_dir.glob(f'*{IMAGE_EXT}'))
    if not keys:
        raise SystemExit(f'{gt_dir} holds no PNG disparity maps.')
    for key in keys:
        given = image_path(split, 'DISP_L', key, scale)
        yield key, {
            'vis': _read(image_path(split, 'VIS', key, scale), 'vis')[..., ::-1],
            'nir': _read(image_path(split, 'NIR', key, scale), 'nir'),
            'given': _read(given, 'disp')[..., 0] if given.is_file() else None,
            'gt': _read(image_path(split, 'DISP_L', key), 'disp')[..., 0],
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


def run_evaluation(model: PathLike, opt: Optional[PathLike], splits: List[PathLike], middlebury: bool,
                   scale: int = 4, bad_threshold: float = 1.0, out: PathLike = 'results/eval_disparity') -> int:
    """Evaluate a checkpoint's disparity on the test sets, print the table and write ``report.md`` / ``report.json``.

    Args:
        model: ``CrossSpectralStereoNet`` or CSPSR (``cvm: learned``) checkpoint.
        opt: Option file whose ``network_g`` built the checkpoint (None: the defaults).
        splits: Canonical splits with ``HR/DISP_L``.
        middlebury: Also the Middlebury motorcycle pair.
        scale: Scale factor (LR = HR / scale).
        bad_threshold: In LR pixels.
        out: Folder of the report.

    Returns:
        int: Exit status: 0, or 2 after a one-line message for bad input (e.g. a missing checkpoint).
    """
    from cspsr_arch.errors import CSPSRInputError
    try:
        net = build_stereo_net(model, opt)
        sets = {}
        for split in splits:
            res = evaluate(net, list(split_samples(split, scale)), scale, bad_threshold)
            sets[os.path.normpath(split)] = {'scenes': res, 'mean': summarise(res)}
        if middlebury:
            res = evaluate(net, [('motorcycle', middlebury_sample(scale))], scale, bad_threshold)
            sets['Middlebury motorcycle'] = {'scenes': res, 'mean': summarise(res)}
    except CSPSRInputError as err:
        print(f'eval_disparity: error: {err}', file=sys.stderr)
        return 2
    table = report(sets, scale, bad_threshold)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'report.md').write_text(table)
    (out / 'report.json').write_text(json.dumps({'model': str(model), 'scale': scale,
                                                 'bad_threshold': bad_threshold, 'sets': sets}, indent=2))
    print(table)
    print(f'written: {out / "report.md"}, {out / "report.json"}')
    return 0
