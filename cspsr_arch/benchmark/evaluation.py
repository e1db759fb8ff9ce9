"""Evaluation of trained benchmark runs and of bicubic interpolation on a test split.

Every model is rebuilt from its run's options by BasicSR's ``build_model`` (``SRModel`` or
``CSPSRModel``) with the final checkpoint, and run by the model's own ``feed_data`` / ``test`` on whole
test images, as BasicSR's validation does. Scores are BasicSR's ``calculate_psnr`` / ``calculate_ssim``
on 8-bit images (``tensor2img``), on RGB and on the Y channel (``test_y_channel``), with a border of
``scale`` pixels cropped, averaged over the images. Bicubic is BasicSR's MATLAB-style ``imresize`` of the
LR input (the inverse of how the LR images were made). The outputs are saved as PNG for the
comparison picture.
"""
import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from cspsr_arch.benchmark.runs import Run, dataset_options

METRICS = ('psnr', 'ssim', 'psnr_y', 'ssim_y')


def scores(sr: np.ndarray, gt: np.ndarray, crop_border: int) -> Dict[str, float]:
    """PSNR/SSIM on RGB and Y of two uint8 BGR images.

    Args:
        sr: Result (H, W, 3).
        gt: Ground truth (H, W, 3).
        crop_border: Pixels left out at each side.
    """
    from basicsr.metrics import calculate_psnr, calculate_ssim
    out = {}
    for suffix, y_only in (('', False), ('_y', True)):
        out[f'psnr{suffix}'] = float(calculate_psnr(sr, gt, crop_border, test_y_channel=y_only))
        out[f'ssim{suffix}'] = float(calculate_ssim(sr, gt, crop_border, test_y_channel=y_only))
    return out


def test_loader(split: Path, scale: int):
    """Batch-1 loader over a test split with every stream (each model reads what it uses)."""
    from basicsr.data import build_dataloader, build_dataset
    opt = dict(dataset_options(split, scale, 'test', disparity=True), phase='val', scale=scale)
    return build_dataloader(build_dataset(opt), opt, num_gpu=0, dist=False)


def _bicubic(lq, scale: int) -> np.ndarray:
    from basicsr.utils.matlab_functions import imresize
    lq = lq[0].numpy().transpose(1, 2, 0)[..., ::-1]  # RGB CHW -> BGR HWC
    return np.clip(np.round(imresize(np.ascontiguousarray(lq), scale) * 255), 0, 255).astype(np.uint8)


def _build(run: Run, checkpoint: Path):
    import torch
    from basicsr.models import build_model
    opt = {k: v for k, v in run.opt.items() if k not in ('train', 'datasets', 'logger')}
    opt.update(is_train=False, dist=False, rank=0, world_size=1, num_gpu=torch.cuda.device_count(), datasets={},
               path={'pretrain_network_g': str(checkpoint), 'strict_load_g': True, 'param_key_g': 'params'})
    return build_model(opt)  # no pretrain_network_disp: the fine-tuned CVM is part of the checkpoint


def evaluate(run: Optional[Run], root: Path, test_name: str, split: Path, scale: int, image_dir: Path,
             compiled: bool = False) -> dict:
    """Scores of a run (None: bicubic) on a test split, cached in ``<root>/eval``.

    Args:
        run: Trained run, or None for bicubic interpolation.
        root: The benchmark folder.
        test_name: Name of the test set (for the cache).
        split: Test split folder.
        scale: Scale factor.
        image_dir: Where ``<key>_<row>.png`` (and ``<key>_GT.png``) go.
        compiled: Run the network through ``torch.compile`` (height and width dynamic: one compilation for
            test images of any size).

    Returns:
        dict: the mean of :data:`METRICS` and ``images`` (per key).
    """
    from basicsr.utils import imwrite, tensor2img
    from tqdm import tqdm
    row = run.model if run else 'bicubic'
    tag = f"{run.name if run else f'bicubic_x{scale}'}_{test_name}"
    cache = root / 'eval' / f'{tag}.json'
    checkpoint = root / run.checkpoint if run else None
    if cache.is_file() and (checkpoint is None or cache.stat().st_mtime >= checkpoint.stat().st_mtime):
        return json.loads(cache.read_text())
    model = _build(run, checkpoint) if run else None
    if model is not None and compiled:
        from cspsr_arch.compile import compile_network
        model.net_g = compile_network(model.net_g, model.device, log=lambda msg: print(f'[benchmark] {msg}'))
    image_dir.mkdir(parents=True, exist_ok=True)
    per_image = {}
    loader = test_loader(split, scale)
    for data in tqdm(loader, desc=f'eval {tag}', unit='img', leave=False, dynamic_ncols=True):
        key = Path(data['gt_path'][0]).stem
        gt = tensor2img(data['gt'])
        if model is None:
            sr = _bicubic(data['lq'], scale)
        else:
            model.feed_data(data)
            model.test()
            sr = tensor2img(model.get_current_visuals()['result'])
        per_image[key] = scores(sr, gt, scale)
        imwrite(sr, str(image_dir / f'{key}_{row}.png'))
        if model is None:
            imwrite(gt, str(image_dir / f'{key}_GT.png'))
    result = {name: float(np.mean([v[name] for v in per_image.values()])) for name in METRICS}
    result['images'] = per_image
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=1))
    return result
