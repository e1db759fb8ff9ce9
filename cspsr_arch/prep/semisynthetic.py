"""A semi-synthetic cross-spectral stereo set from real, registered VIS/NIR pairs: real spectra, known geometry
(``tools/make_semisynthetic_rgbnir.py``).

Input: any folder of ``<name>_rgb.<ext>`` / ``<name>_nir.<ext>`` pairs of one size (the ``pairs`` layout of
``tools/prepare_data.py``), e.g. ``../shared/data/real_rgbnir``. For every pair and variant:

* **Registration check.** The real NIR is used as the NIR *of the left (VIS) view*, so VIS and NIR must be
  registered. The tool measures every pair (:func:`cspsr_arch.prep.registration.measure_misalignment`: phase
  correlation of the gradient magnitudes on overlapping 128-pixel tiles at the source resolution;
  ``misalignment = |median tile shift| + 80th percentile of the tiles' distance to it``, in pixels).
  Registered pairs measure 0.5-1.5 pixels (the spread of the estimate); a stereo pair with parallax, a
  shifted pair or one whose content moved between the two shots measures several. Pairs above
  ``--max-misalignment`` (default 2.5) are an error naming them, or, with ``--misaligned``, skipped, kept,
  or **registered**: the NIR warped onto the VIS by a dense, smooth field
  (:func:`cspsr_arch.prep.registration.register_nir`; the VIS is never touched) and measured again; a pair
  still beyond the limit is left out and reported.
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
    python tools/make_semisynthetic_rgbnir.py --input ../shared/data/nirscene_country --out datasets/Country \\
        --scales 4 --max-size 480 --misaligned register --max-misalignment 1.5 --test-scenes 0040 0041
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.prepare import read_pair as _read_pair
from cspsr_arch.prep.registration import MISALIGNED_POLICIES, check_pair, measure_misalignment  # noqa: F401
from cspsr_arch.prep.sources import SourcePair, scan_layout
from cspsr_arch.prep.split import meta_keys, meta_line, prepare_split, write_meta_info, write_sample
from cspsr_arch.prep.synthetic.scenes import crop_box, disparity_range, right_view, scene_rng, synth_disparity

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


def _check_registration(pairs: Dict[str, Tuple[SourcePair, np.ndarray, np.ndarray]], policies: Dict[str, str],
                        limit: float, infos: List[dict]) -> List[str]:
    """Measure every pair and apply its policy (registered NIR images replace the found ones in ``pairs``);
    return the names to use. Raises for misaligned pairs under the 'error' policy, after measuring all.

    Args:
        pairs: name -> (source pair, VIS, NIR).
        policies: name -> policy of :data:`MISALIGNED_POLICIES`.
        limit: Misalignment limit in pixels.
        infos: Receives one record per pair (:meth:`~cspsr_arch.prep.registration.PairCheck.record` plus ``key``
            and ``line``, a one-line description).
    """
    bad, use = [], []
    for name, (pair, vis, nir) in pairs.items():
        nir_used, checked = check_pair(vis, nir, policies[name], limit)
        infos.append({'key': name, **checked.record(), 'line': checked.describe()})
        if checked.action == 'rejected':
            bad.append(f'{pair.nir} ({checked.describe()})')
        if checked.used:
            use.append(name)
            pairs[name] = (pair, vis, nir_used)
    if bad:
        raise CSPSRInputError(f'{len(bad)} pair(s) are not registered (misalignment above {limit} px): '
                              + '; '.join(bad) + '. The NIR must be the NIR of the VIS view: pass --misaligned '
                              'register (warp the NIR onto the VIS), skip (leave them out) or keep (use them anyway).')
    return use


def build_dataset(input_dir: str | Path, out_dir: str | Path, scales: Sequence[int] = (2, 4), seed: int = 0,
                  test_scenes: Optional[Sequence[str]] = None, max_size: Optional[int] = None, variants: int = 2,
                  misaligned: str = 'error', max_misalignment: float = 2.5, overwrite: bool = False,
                  test_misaligned: Optional[str] = None, exclude: Sequence[str] = (),
                  train: bool = True) -> Tuple[Dict[str, List[str]], List[dict]]:
    """Generate the semi-synthetic set; returns the split keys and one record per source pair.

    Args:
        input_dir: folder of ``<name>_rgb.*`` / ``<name>_nir.*`` pairs.
        out_dir: output folder (``<out_dir>/train`` and ``<out_dir>/test``).
        scales: SR scales (integers >= 2).
        seed: seed; the same seed writes byte-identical files.
        test_scenes: pair names of the test split (default :func:`default_test_scenes`).
        max_size: shrink images whose longest side is larger to this size first (None: keep the size).
        variants: training variants per pair (each its own disparity; odd ones mirrored).
        misaligned: what to do with misregistered pairs (:data:`~cspsr_arch.prep.registration.MISALIGNED_POLICIES`):
            ``'error'``, ``'skip'``, ``'keep'`` or ``'register'`` (the NIR warped onto the VIS; pairs that stay
            beyond the limit are left out and reported).
        max_misalignment: registration limit in source pixels.
        overwrite: replace non-empty split folders.
        test_misaligned: the policy of the test pairs when it differs from ``misaligned`` (e.g. ``'keep'``: test
            photographs as they were taken, training pairs registered); needs ``test_scenes``.
        exclude: pair names left out of both splits (measured and reported all the same, never registered).
        train: write the training split (False: the test split only; with ``test_scenes``, the other pairs are
            measured only).

    Returns:
        ({'train': keys, 'test': keys}, records with ``key``, the registration record of
        :class:`~cspsr_arch.prep.registration.PairCheck` (``registration``, ``misaligned``, ``action``,
        ``skipped``, ``after``, ``check``, ``max_shift``), ``line`` and, for used pairs, ``split``, ``size`` and
        ``disp_l`` (min, max) of variant 0).
    """
    scales = sorted({int(s) for s in scales})
    if not scales or min(scales) < 2:
        raise CSPSRInputError(f'scales must be integers >= 2, got {scales}.')
    if variants < 1:
        raise CSPSRInputError(f'variants must be at least 1, got {variants}.')
    for policy in (misaligned, test_misaligned or misaligned):
        if policy not in MISALIGNED_POLICIES:
            raise CSPSRInputError(f'misaligned must be one of {", ".join(MISALIGNED_POLICIES)}, got {policy!r}.')
    if test_misaligned is not None and test_scenes is None:
        raise CSPSRInputError('a policy of its own for the test pairs needs the test scenes named (--test-scenes).')
    pairs = {}
    for pair in scan_layout('pairs', input_dir, splits=['all'])['all']:
        vis, nir = _read_pair(pair)
        pairs[pair.key] = (pair, vis, nir)
    unknown = sorted(set(exclude) - set(pairs))
    if unknown:
        raise CSPSRInputError(f'excluded pair(s) {", ".join(unknown)} are not in {input_dir}; name pairs of the folder.')
    tests_given = set(test_scenes or ())
    policies = {name: (test_misaligned or misaligned) if name in tests_given else misaligned for name in pairs}
    for name in pairs:  # pairs that are not written are measured only
        if name in exclude or (not train and test_scenes is not None and name not in tests_given):
            policies[name] = 'keep'
    infos: List[dict] = []
    names = [n for n in _check_registration(pairs, policies, max_misalignment, infos) if n not in exclude]
    tests = default_test_scenes(names) if test_scenes is None else list(test_scenes)
    unknown = sorted(set(tests) - set(names))
    if unknown:
        raise CSPSRInputError(f'test scene(s) {", ".join(unknown)} are not among the usable pairs of {input_dir} '
                              f'({", ".join(names) or "none"}); name pairs of the folder (<name>_rgb / <name>_nir).')
    plan = {'train': [(n, v) for n in names if n not in tests for v in range(variants)] if train else [],
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
