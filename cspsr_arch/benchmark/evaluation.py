"""Evaluation of trained benchmark runs and of bicubic interpolation on a test split.

Every model is rebuilt from its run's options by BasicSR's ``build_model`` (``SRModel`` or
``CSPSRModel``) with the final checkpoint, and run by the model's own ``feed_data`` / ``test`` on whole
test images, as BasicSR's validation does. Scores are BasicSR's ``calculate_psnr`` / ``calculate_ssim``
on 8-bit images (``tensor2img``), on RGB and on the Y channel (``test_y_channel``), with a border of
``scale`` pixels cropped, averaged over the images. Bicubic is BasicSR's MATLAB-style ``imresize`` of the
LR input (the inverse of how the LR images were made). The outputs are saved as PNG for the
comparison picture. Scores are cached per run and test set; a cached entry is used only while the
checkpoint is not newer and the test split's files are byte for byte those it was computed on.
"""
import hashlib
import json
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from cspsr_arch.benchmark.runs import Run, dataset_options, network_nir_scale

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


def test_loader(split: Path, scale: int, degradation: Optional[dict] = None, nir_scale: int = 1):
    """Batch-1 loader over a test split with every stream (each model reads what it uses).

    Args:
        split: Test split folder.
        scale: Scale factor.
        degradation: The camera protocol's ``degradation`` block (None: the bicubic protocol); fixed per key.
        nir_scale: The NIR input at this multiple of the LR size (the model's ``nir_scale``).
    """
    from basicsr.data import build_dataloader, build_dataset
    opt = dict(dataset_options(split, scale, 'test', disparity=True, nir_scale=nir_scale), phase='val', scale=scale)
    if degradation is not None:
        opt['degradation'] = degradation
    return build_dataloader(build_dataset(opt), opt, num_gpu=0, dist=False)


def split_fingerprint(split: Path, scale: int) -> str:
    """SHA-256 over the names and contents of every file the test loader reads from ``split`` at ``scale``.

    Args:
        split: Test split folder.
        scale: Scale factor (selects ``LR_bicubic/X<scale>``).
    """
    opt = dataset_options(split, scale, 'test', disparity=True)
    files = [Path(opt['meta_info_file'])]
    for key, root in opt.items():
        if key.startswith('dataroot_') and Path(root).is_dir():
            files += [p for p in Path(root).iterdir() if p.is_file()]
    digest = hashlib.sha256()
    for path in sorted(p for p in files if p.is_file()):
        digest.update(f'{path.relative_to(split)}\0'.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _cached(cache: Path, checkpoint: Optional[Path], fingerprint: str) -> Optional[dict]:
    """The cached scores, if they were computed on this split and the checkpoint is not newer."""
    if not cache.is_file() or (checkpoint is not None and cache.stat().st_mtime < checkpoint.stat().st_mtime):
        return None
    result = json.loads(cache.read_text())
    return result if result.get('split_sha256') == fingerprint else None


def bicubic(lq, scale: int) -> np.ndarray:
    """BasicSR's MATLAB-style bicubic upsampling of a batch-1 RGB tensor, as a uint8 BGR image."""
    from basicsr.utils.matlab_functions import imresize
    lq = lq[0].numpy().transpose(1, 2, 0)[..., ::-1]  # RGB CHW -> BGR HWC
    return np.clip(np.round(imresize(np.ascontiguousarray(lq), scale) * 255), 0, 255).astype(np.uint8)


def with_nir(data: dict, nir: str, others: Sequence) -> Optional[dict]:
    """The batch with its LR NIR replaced, for the diagnostics of whether a model uses the NIR.

    Args:
        data: A batch-1 sample.
        nir: ``'real'`` (unchanged), ``'zero'`` (NIR replaced by zeros) or ``'swap'`` (the NIR of another
            test image, resized to this one's size: right spectrum statistics, wrong content).
        others: The other test images' LR NIR tensors (``'swap'`` takes the first).

    Returns:
        The changed batch, or None when there is no other image to swap with.
    """
    import torch.nn.functional as F
    if nir == 'real':
        return data
    if nir == 'zero':
        replaced = data['lq_nir'].new_zeros(data['lq_nir'].shape)
    elif nir == 'swap':
        if not others:
            return None
        replaced = F.interpolate(others[0], size=data['lq_nir'].shape[-2:], mode='bilinear', align_corners=False)
    else:
        raise ValueError(f"nir must be 'real', 'zero' or 'swap', got {nir!r}.")
    return {**data, 'lq_nir': replaced}


def score_loader(model, loader, scale: int, image_dir: Optional[Path] = None, row: str = 'SR',
                 nir: str = 'real') -> Optional[Dict[str, Dict[str, float]]]:
    """Per-image scores of a model (None: bicubic) on a batch-1 loader.

    Args:
        model: A BasicSR model (``feed_data`` / ``test`` / ``get_current_visuals``), or None for bicubic.
        loader: Batch-1 loader of :func:`test_loader` (or BasicSR's validation loader).
        scale: Scale factor (the border cropped before scoring).
        image_dir: Where ``<key>_<row>.png`` (and, for bicubic, ``<key>_GT.png``) go; None: not saved.
        row: Name of the row in the file names.
        nir: See :func:`with_nir`.

    Returns:
        key -> :data:`METRICS`, or None when ``nir='swap'`` has a single test image.
    """
    from basicsr.utils import imwrite, tensor2img
    batches = list(loader)
    nirs = [b['lq_nir'] for b in batches]
    per_image = {}
    for i, data in enumerate(batches):
        key = Path(data['gt_path'][0]).stem
        data = with_nir(data, nir, nirs[i + 1:] + nirs[:i])
        if data is None:
            return None
        gt = tensor2img(data['gt'])
        if model is None:
            sr = bicubic(data['lq'], scale)
        else:
            model.feed_data(data)
            model.test()
            sr = tensor2img(model.get_current_visuals()['result'])
        per_image[key] = scores(sr, gt, scale)
        if image_dir is not None:
            image_dir.mkdir(parents=True, exist_ok=True)
            imwrite(sr, str(image_dir / f'{key}_{row}.png'))
            if model is None:
                imwrite(gt, str(image_dir / f'{key}_GT.png'))
    return per_image


def mean_scores(per_image: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """The mean of each metric over the images."""
    return {name: float(np.mean([v[name] for v in per_image.values()])) for name in METRICS}


def build_trained(opt: dict, checkpoint: Path):
    """The model (``SRModel``, ``CSPSRModel``) of training options, for testing, with a trained checkpoint.

    Args:
        opt: The options the checkpoint was trained with (training, data and logger sections are dropped).
        checkpoint: ``net_g`` weights (``params``); no ``pretrain_network_disp`` is loaded: the fine-tuned
            CVM is part of the checkpoint.
    """
    import torch
    from basicsr.models import build_model

    from cspsr_arch.engine.options import check_options
    opt = {k: v for k, v in opt.items() if k not in ('train', 'datasets', 'logger', 'val')}
    opt.update(is_train=False, dist=False, rank=0, world_size=1, num_gpu=torch.cuda.device_count(), datasets={},
               path={'pretrain_network_g': str(checkpoint), 'strict_load_g': True, 'param_key_g': 'params'})
    check_options(opt)
    return build_model(opt)


def evaluate(run: Optional[Run], root: Path, test_name: str, split: Path, scale: int, image_dir: Optional[Path],
             degradation: Optional[dict] = None, nir: str = 'real', compiled: bool = False) -> Optional[dict]:
    """Scores of a run (None: bicubic) on a test split, cached in ``<root>/eval`` (see :func:`_cached`).

    Args:
        run: Trained run, or None for bicubic interpolation.
        root: The benchmark folder.
        test_name: Name of the test set (for the cache).
        split: Test split folder.
        scale: Scale factor.
        image_dir: Where ``<key>_<row>.png`` (and ``<key>_GT.png``) go; None: not saved.
        degradation: The camera protocol's block (the test inputs fixed per key), or None (bicubic protocol).
        nir: ``'real'``, ``'zero'`` or ``'swap'`` (see :func:`with_nir`).
        compiled: Run the network through ``torch.compile`` (height and width dynamic: one compilation for
            test images of any size).

    Returns:
        dict: the mean of :data:`METRICS`, ``images`` (per key) and ``split_sha256`` (:func:`split_fingerprint`);
        None for ``'swap'`` with one test image.
    """
    from tqdm import tqdm
    row = run.model if run else 'bicubic'
    protocol = 'camera' if degradation is not None else 'bicubic'
    tag = f"{run.name if run else f'bicubic_x{scale}_{protocol}'}_{test_name}" + ('' if nir == 'real' else f'_nir_{nir}')
    cache = root / 'eval' / f'{tag}.json'
    checkpoint = root / run.checkpoint if run else None
    fingerprint = split_fingerprint(split, scale)
    cached = _cached(cache, checkpoint, fingerprint)
    if cached is not None:
        return None if cached.get('unavailable') else cached
    model = build_trained(run.opt, checkpoint) if run else None
    if model is not None and compiled:
        from cspsr_arch.engine.compile import compile_network
        model.net_g = compile_network(model.net_g, model.device, log=lambda msg: print(f'[benchmark] {msg}'))
    nir_scale = network_nir_scale(run.opt['network_g']) if run else 1
    loader = tqdm(test_loader(split, scale, degradation, nir_scale), desc=f'eval {tag}', unit='img', leave=False,
                  dynamic_ncols=True)
    per_image = score_loader(model, loader, scale, image_dir if nir == 'real' else None, row, nir)
    result = {'split_sha256': fingerprint, 'unavailable': True} if per_image is None else {
        **mean_scores(per_image), 'images': per_image, 'split_sha256': fingerprint}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=1))
    return None if result.get('unavailable') else result
