"""Is a NIR image like a real one? Statistics of registered VIS/NIR pairs, to compare data sets.

A network trained on synthetic NIR learns what that NIR holds; if it differs from real NIR in what matters
(brightness of vegetation and sky, textures that the VIS image does not have), it learns nothing that
transfers. Per registered pair (the NIR in the VIS image's view), with ``Y`` the VIS luminance:

* ``nir_mean``, ``nir_std``: the NIR's level and contrast;
* ``corr_intensity``: correlation of Y and NIR over pixels;
* ``corr_gradient``: correlation of the Sobel gradient magnitudes of Y and NIR: 1 when the NIR's edges are
  the VIS image's edges (then it adds no structure the VIS image lacks);
* ``detail_ratio``: RMS of the NIR's high frequencies (image minus a Gaussian blur, sigma 2) over Y's;
* ``unique_detail``: the share of the NIR's high-frequency energy that a per-image linear fit on Y's high
  frequencies does not explain (1 - R^2): what the NIR could add;
* ``veg_ratio`` / ``sky_ratio``: mean NIR over mean Y on green-dominant (vegetation) and blue-dominant bright
  (sky) pixels, NaN when the image has fewer than 1 % of such pixels. Real NIR: vegetation bright
  (ratio above 1), sky dark (below 1).
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from cspsr_arch.errors import CSPSRInputError

KEYS = ('nir_mean', 'nir_std', 'corr_intensity', 'corr_gradient', 'detail_ratio', 'unique_detail', 'veg_ratio',
        'sky_ratio')
"""The statistics of :func:`pair_statistics`, in the order of the report."""


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def _gradient(img: np.ndarray) -> np.ndarray:
    return np.hypot(cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3))


def _high(img: np.ndarray) -> np.ndarray:
    return img - cv2.GaussianBlur(img, (0, 0), 2.0)


def _ratio(nir: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    if mask.mean() < 0.01:
        return float('nan')
    return float(nir[mask].mean() / max(float(y[mask].mean()), 1e-6))


def pair_statistics(rgb: np.ndarray, nir: np.ndarray) -> Dict[str, float]:
    """The statistics of the module docstring for one registered pair.

    Args:
        rgb: VIS image (H, W, 3), RGB, float in [0, 1].
        nir: NIR image (H, W), float in [0, 1], in the VIS image's view.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or nir.shape != rgb.shape[:2]:
        raise ValueError(f'expected an (H, W, 3) VIS and an (H, W) NIR image, got {rgb.shape} and {nir.shape}.')
    rgb, nir = rgb.astype(np.float32), nir.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    veg = (g > r * 1.05) & (g > b * 1.05)
    sky = (b > r * 1.1) & (b > g) & (y > 0.4)
    high_y, high_nir = _high(y), _high(nir)
    rms_y = float(np.sqrt((high_y**2).mean()))
    fit = _corr(high_y, high_nir)
    return {
        'nir_mean': float(nir.mean()), 'nir_std': float(nir.std()),
        'corr_intensity': _corr(y, nir), 'corr_gradient': _corr(_gradient(y), _gradient(nir)),
        'detail_ratio': float(np.sqrt((high_nir**2).mean())) / rms_y if rms_y > 0 else float('nan'),
        'unique_detail': 1.0 - fit * fit,
        'veg_ratio': _ratio(nir, y, veg), 'sky_ratio': _ratio(nir, y, sky),
    }


def read_pair(vis_path: Path, nir_path: Path, max_size: int = 480) -> Tuple[np.ndarray, np.ndarray]:
    """A VIS/NIR pair from files, as float RGB and NIR in [0, 1], the longest side at most ``max_size``.

    Raises:
        CSPSRInputError: A file that cannot be read, or a NIR whose size differs from the VIS image's.
    """
    vis, nir = cv2.imread(str(vis_path), cv2.IMREAD_COLOR), cv2.imread(str(nir_path), cv2.IMREAD_GRAYSCALE)
    for img, path in ((vis, vis_path), (nir, nir_path)):
        if img is None:
            raise CSPSRInputError(f'{path} could not be read as an image; check the file (corrupt or not an image).')
    if vis.shape[:2] != nir.shape[:2]:
        raise CSPSRInputError(f'{vis_path} is {vis.shape[1]}x{vis.shape[0]} but {nir_path} is '
                              f'{nir.shape[1]}x{nir.shape[0]}: the statistics need registered pairs of one size.')
    factor = max_size / max(vis.shape[:2])
    if factor < 1:
        size = (round(vis.shape[1] * factor), round(vis.shape[0] * factor))
        vis, nir = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (vis, nir))
    return vis[..., ::-1].astype(np.float32) / 255.0, nir.astype(np.float32) / 255.0


def summarise(rows: Iterable[Dict[str, float]]) -> Dict[str, float]:
    """Per statistic, the mean over the pairs that have it (NaN-free), and ``pairs``: how many pairs."""
    rows = list(rows)
    out = {}
    for key in KEYS:
        values = [r[key] for r in rows if not np.isnan(r[key])]
        out[key] = float(np.mean(values)) if values else float('nan')
    out['pairs'] = float(len(rows))
    return out


def synthetic_pairs(max_size: int = 480) -> List[Tuple[np.ndarray, np.ndarray]]:
    """The embedded synthetic scenes (variant 0) with their left-view NIR, as the generator renders them."""
    from cspsr_arch.prep.synthetic.build import render_scene
    from cspsr_arch.prep.synthetic.scenes import SCENES
    pairs = []
    for name in SCENES:
        scene = render_scene(name, variant=0, max_size=max_size, vis_effects=False)
        pairs.append((scene['clean'], scene['nir_left']))
    return pairs


def folder_pairs(folder: Path, max_size: int = 480) -> List[Tuple[np.ndarray, np.ndarray]]:
    """The ``<key>_rgb.*`` / ``<key>_nir.*`` pairs of a folder (``tools/prepare_data.py pairs`` naming)."""
    from cspsr_arch.prep.sources import scan_layout
    pairs = [p for split in scan_layout('pairs', folder).values() for p in split]
    if not pairs:
        raise CSPSRInputError(f'no <key>_rgb / <key>_nir pairs in {folder}.')
    return [read_pair(Path(p.vis), Path(p.nir), max_size) for p in pairs]


def markdown_table(summaries: Dict[str, Dict[str, float]]) -> str:
    """One row per data set of :func:`summarise` results."""
    lines = ['| data set | pairs | ' + ' | '.join(KEYS) + ' |', '| --- ' * (len(KEYS) + 2) + '|']
    for name, stats in summaries.items():
        lines.append(f'| {name} | {int(stats["pairs"])} | ' + ' | '.join(f'{stats[k]:.3f}' for k in KEYS) + ' |')
    return '\n'.join(lines)


USAGE = """How much like real NIR is a data set's NIR? Statistics of registered VIS/NIR pairs, one row per data set.

Intensity and gradient correlation with the VIS luminance, the NIR's own high-frequency detail, vegetation and
sky brightness relative to the VIS (definitions: :mod:`cspsr_arch.benchmark.nir_realism`).

Usage::

    python tools/nir_statistics.py [--synthetic] [FOLDER ...] [--max-size 480]

``FOLDER`` holds registered ``<key>_rgb.*`` / ``<key>_nir.*`` pairs (e.g. ../shared/data/nirscene_country);
``--synthetic`` adds the embedded synthetic scenes with the NIR the generator renders for them.
"""
"""The command line help of ``main`` (the tool's docstring)."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/nir_statistics.py``: see :data:`USAGE`."""
    from cspsr_arch.helptext import split_doc
    p = argparse.ArgumentParser(description=split_doc(USAGE)[0], epilog=split_doc(USAGE)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('folders', nargs='*', help='folders of registered <key>_rgb / <key>_nir pairs')
    p.add_argument('--synthetic', action='store_true', help='add the embedded synthetic scenes')
    p.add_argument('--max-size', type=int, default=480, help='longest side the pairs are resized to (default: 480)')
    args = p.parse_args(argv)
    if not args.folders and not args.synthetic:
        p.error('give at least one folder or --synthetic')

    summaries = {}
    try:
        if args.synthetic:
            pairs = synthetic_pairs(args.max_size)
            summaries['synthetic'] = summarise(pair_statistics(*pair) for pair in pairs)
        for folder in args.folders:
            pairs = folder_pairs(Path(folder), args.max_size)
            summaries[Path(folder).name] = summarise(pair_statistics(*pair) for pair in pairs)
    except CSPSRInputError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(markdown_table(summaries))
    return 0
