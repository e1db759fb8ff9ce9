"""A semi-synthetic cross-spectral stereo set from real, registered VIS/NIR pairs: real spectra, known geometry
(``tools/make_semisynthetic_rgbnir.py``).

Input: any folder of ``<name>_rgb.<ext>`` / ``<name>_nir.<ext>`` pairs of one size (the ``pairs`` layout of
``tools/prepare_data.py``), e.g. ``../shared/data/real_rgbnir``. For every pair and variant:

* **Registration check.** The real NIR is used as the NIR *of the left (VIS) view*, so VIS and NIR must be
  registered. The tool measures it: phase correlation of the gradient magnitudes of the VIS luminance and
  the NIR on overlapping 128-pixel tiles (at the source resolution); ``misalignment = |median tile shift|
  + 80th percentile of the tiles' distance to it`` (pixels). Registered pairs measure 0.5-2 pixels (the
  spread of the estimate); a stereo pair with parallax or a shifted pair measures several. Pairs above
  ``--max-misalignment`` (default 2.5) are an error naming them, or skipped / kept with ``--misaligned``.
* **Geometry.** A plausible left disparity is generated for the VIS image (``cspsr_arch.prep.synthetic.scenes``:
  a ground plane with tilt and wobble plus image segments lifted to fronto-parallel layers; far end 1-6
  and largest 24-44 pixels per 480 pixels of the longest side), the right disparity is its z-buffered
  forward warp, and the right-view NIR is the real NIR resampled by it (bicubic; disocclusions filled by
  mirroring from the background side), exactly as the synthetic set makes its right views. So
  ``NIR_l(y, x) = NIR_r(y, x - disp_l(y, x))`` on every pixel visible in both views, with the real NIR as
  ``NIR_l``; the VIS image is the real one, untouched.
* **Output**, the canonical layout of ``datasets/README.md`` under ``<out>/train`` and ``<out>/test``:
  HR VIS/NIR, 16-bit DISP_L/DISP_R, and per scale ``LR_bicubic/X<s>`` (BasicSR's ``imresize``) with LR
  disparities, and ``meta_info.txt``. Images are first shrunk to ``--max-size`` (area) when given, then
  centre-cropped to a multiple of the scales' lcm.
* **Split by scene.** ``--test-scenes`` names the pairs of the test split (default: the last third of the
  pair names in sorted order, at least one); a test pair is written once (key ``<name>``), a training
  pair ``--variants`` times (keys ``<name>_v<i>``, each with its own disparity; odd variants are mirrored).

Usage::

    python tools/make_semisynthetic_rgbnir.py --input ../shared/data/real_rgbnir --out datasets/SemiSynthetic \\
        --scales 2 4 --misaligned skip --test-scenes scene_tree
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.prepare import read_pair as _read_pair
from cspsr_arch.prep.sources import SourcePair, scan_layout
from cspsr_arch.prep.split import meta_keys, meta_line, prepare_split, write_meta_info, write_sample
from cspsr_arch.prep.synthetic.scenes import crop_box, disparity_range, right_view, scene_rng, synth_disparity

MISALIGNED_POLICIES = ('error', 'skip', 'keep')


def _gradient(img: np.ndarray) -> np.ndarray:
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0)
    return np.hypot(cv2.Sobel(img, cv2.CV_32F, 1, 0), cv2.Sobel(img, cv2.CV_32F, 0, 1))


def measure_misalignment(vis: np.ndarray, nir: np.ndarray, tile: int = 128,
                         min_response: float = 0.2) -> Dict[str, Optional[float]]:
    """How far a VIS/NIR pair is from registered (see the module docstring).

    Args:
        vis: uint8 VIS image (H, W, 3), BGR.
        nir: uint8 NIR image (H, W).
        tile: tile side (shrunk to a quarter of the shorter side for small images).
        min_response: phase-correlation peak below which a tile (flat, or no common structure) is ignored.

    Returns:
        dict: ``shift_x``, ``shift_y`` (median tile shift of the NIR relative to the VIS), ``spread`` (80th
        percentile of the tiles' distance to the median), ``misalignment`` (``|shift| + spread``) and
        ``tiles`` (tiles used); the figures are None when no tile has enough structure.
    """
    g_vis, g_nir = _gradient(cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY)), _gradient(nir)
    h, w = g_vis.shape
    tile = max(16, min(tile, min(h, w) // 4))
    window = cv2.createHanningWindow((tile, tile), cv2.CV_32F)
    shifts = []
    for y in range(0, h - tile + 1, tile // 2):
        for x in range(0, w - tile + 1, tile // 2):
            a, b = g_vis[y:y + tile, x:x + tile], g_nir[y:y + tile, x:x + tile]
            # zero-mean tiles: the windowed mean alone would correlate best at zero shift
            (dx, dy), response = cv2.phaseCorrelate(a - a.mean(), b - b.mean(), window)
            if response > min_response:
                shifts.append((dx, dy))
    if not shifts:
        return {'shift_x': None, 'shift_y': None, 'spread': None, 'misalignment': None, 'tiles': 0}
    shifts_arr = np.array(shifts)
    median = np.median(shifts_arr, axis=0)
    spread = float(np.percentile(np.hypot(*(shifts_arr - median).T), 80))
    return {'shift_x': float(median[0]), 'shift_y': float(median[1]), 'spread': spread,
            'misalignment': float(np.hypot(*median)) + spread, 'tiles': len(shifts)}


def default_test_scenes(names: Sequence[str]) -> List[str]:
    """The last third of the sorted names (at least one; none when there is a single pair)."""
    names = sorted(names)
    return names[len(names) - max(1, round(len(names) / 3)):] if len(names) > 1 else []


def _fit(img: np.ndarray, max_size: Optional[int]) -> np.ndarray:
    if not max_size or max(img.shape[:2]) <= max_size:
        return img
    f = max_size / max(img.shape[:2])
    size = (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def render_pair(vis: np.ndarray, nir: np.ndarray, key: str, seed: int, variant: int,
                scales: Sequence[int]) -> Dict[str, np.ndarray]:
    """One stereo sample of a registered pair: the real VIS (left), the real NIR moved to the right view.

    Args:
        vis: uint8 VIS (H, W, 3) BGR.
        nir: uint8 NIR (H, W), registered with ``vis``.
        key: pair name (seeds the random generator together with ``seed`` and ``variant``).
        seed: data set seed.
        variant: variant index (odd: mirrored).
        scales: SR scales; the image is centre-cropped to a multiple of their lcm.

    Returns:
        dict: ``vis`` float32 (h, w, 3) RGB, ``nir`` (right view) and ``nir_left`` float32 (h, w) in [0, 1],
        ``disp_l``, ``disp_r`` float32 (h, w) in pixels, bool ``holes`` (right pixels disoccluded).
    """
    rng = scene_rng(key, seed, variant)
    if variant % 2 == 1:
        vis, nir = vis[:, ::-1], nir[:, ::-1]
    box = crop_box(vis.shape[0], vis.shape[1], math.lcm(*[int(s) for s in scales]))
    rgb = cv2.cvtColor(np.ascontiguousarray(vis[box]), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    nir_left = np.ascontiguousarray(nir[box]).astype(np.float32) / 255.0
    d_l = synth_disparity(rgb, rng, *disparity_range(rng, max(rgb.shape[:2])))
    nir_right, d_r, holes = right_view(nir_left, d_l)
    return {'vis': rgb, 'nir': np.clip(nir_right, 0, 1), 'nir_left': nir_left, 'disp_l': d_l,
            'disp_r': d_r.astype(np.float32), 'holes': holes}


def _check_registration(pairs: Dict[str, Tuple[SourcePair, np.ndarray, np.ndarray]], policy: str, limit: float,
                        infos: List[dict]) -> List[str]:
    """Measure every pair; return the names to use (raise for misaligned ones under the 'error' policy)."""
    bad, use = [], []
    for name, (pair, vis, nir) in pairs.items():
        figures = measure_misalignment(vis, nir)
        misaligned = figures['misalignment'] is not None and figures['misalignment'] > limit
        infos.append({'key': name, 'registration': figures, 'misaligned': misaligned,
                      'skipped': misaligned and policy == 'skip'})
        if misaligned:
            bad.append(f"{pair.nir} (NIR shifted by {figures['shift_x']:+.1f}, {figures['shift_y']:+.1f} px, spread "
                       f"{figures['spread']:.1f} px: misalignment {figures['misalignment']:.1f} px)")
        if not misaligned or policy == 'keep':
            use.append(name)
    if bad and policy == 'error':
        raise CSPSRInputError(f'{len(bad)} pair(s) are not registered (misalignment above {limit} px): '
                              + '; '.join(bad) + '. The NIR must be the NIR of the VIS view: register them first, '
                              'or pass --misaligned skip (leave them out) or --misaligned keep (use them anyway).')
    return use


def build_dataset(input_dir: str | Path, out_dir: str | Path, scales: Sequence[int] = (2, 4), seed: int = 0,
                  test_scenes: Optional[Sequence[str]] = None, max_size: Optional[int] = None, variants: int = 2,
                  misaligned: str = 'error', max_misalignment: float = 2.5,
                  overwrite: bool = False) -> Tuple[Dict[str, List[str]], List[dict]]:
    """Generate the semi-synthetic set; returns the split keys and one record per source pair.

    Args:
        input_dir: folder of ``<name>_rgb.*`` / ``<name>_nir.*`` pairs.
        out_dir: output folder (``<out_dir>/train`` and ``<out_dir>/test``).
        scales: SR scales (integers >= 2).
        seed: seed; the same seed writes byte-identical files.
        test_scenes: pair names of the test split (default :func:`default_test_scenes`).
        max_size: shrink images whose longest side is larger to this size first (None: keep the size).
        variants: training variants per pair (each its own disparity; odd ones mirrored).
        misaligned: what to do with unregistered pairs: ``'error'``, ``'skip'`` or ``'keep'``.
        max_misalignment: registration limit in source pixels.
        overwrite: replace non-empty split folders.

    Returns:
        ({'train': keys, 'test': keys}, records with ``key``, ``registration``, ``misaligned``, ``skipped``
        and, for used pairs, ``split``, ``size`` and ``disp_l`` (min, max) of variant 0).
    """
    scales = sorted({int(s) for s in scales})
    if not scales or min(scales) < 2:
        raise CSPSRInputError(f'scales must be integers >= 2, got {scales}.')
    if variants < 1:
        raise CSPSRInputError(f'variants must be at least 1, got {variants}.')
    if misaligned not in MISALIGNED_POLICIES:
        raise CSPSRInputError(f'misaligned must be one of {", ".join(MISALIGNED_POLICIES)}, got {misaligned!r}.')
    pairs = {}
    for pair in scan_layout('pairs', input_dir, splits=['all'])['all']:
        vis, nir = _read_pair(pair)
        pairs[pair.key] = (pair, vis, nir)
    infos: List[dict] = []
    names = _check_registration(pairs, misaligned, max_misalignment, infos)
    tests = default_test_scenes(names) if test_scenes is None else list(test_scenes)
    unknown = sorted(set(tests) - set(names))
    if unknown:
        raise CSPSRInputError(f'test scene(s) {", ".join(unknown)} are not among the usable pairs of {input_dir} '
                              f'({", ".join(names) or "none"}); name pairs of the folder (<name>_rgb / <name>_nir).')
    plan = {'train': [(n, v) for n in names if n not in tests for v in range(variants)],
            'test': [(n, 0) for n in names if n in tests]}
    plan = {split: items for split, items in plan.items() if items}
    if not plan:
        raise CSPSRInputError(f'no usable pair in {input_dir}.')
    for split in plan:
        prepare_split(Path(out_dir) / split, overwrite)
    record = {info['key']: info for info in infos}
    keys: Dict[str, List[str]] = {}
    for split, items in plan.items():
        root = Path(out_dir) / split
        root.mkdir(parents=True, exist_ok=True)
        meta = []
        for name, variant in items:
            pair, vis, nir = pairs[name]
            vis, nir = _fit(vis, max_size), _fit(nir, max_size)
            try:
                sample = render_pair(vis, nir, name, seed, variant, scales)
            except ValueError as err:
                raise CSPSRInputError(f'{pair.vis}: {err}; use larger images or smaller scales.') from None
            key = name if split == 'test' else f'{name}_v{variant}'
            write_sample(root, key, sample, scales)
            h, w = sample['disp_l'].shape
            meta.append(meta_line(key, h, w))
            if variant == 0:
                record[name].update(split=split, size=(h, w),
                                    disp_l=(float(sample['disp_l'].min()), float(sample['disp_l'].max())))
        write_meta_info(root, meta)
        keys[split] = meta_keys(meta)
    return keys, infos
