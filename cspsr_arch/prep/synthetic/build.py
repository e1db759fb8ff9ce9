"""Build a small, deterministic cross-spectral stereo data set (VIS left, NIR right) from the
photographs that ship inside scikit-image (nothing is downloaded): colour photographs, grey ones
(cameraman, coins, moon, page, text) coloured by a smooth random tint field, and a composite of its
brick/grass/gravel textures. Scenes, depth and stereo geometry live in ``cspsr_arch.prep.synthetic.scenes``.

The layout written is the canonical one of ``datasets/README.md``. For every scene:

* **Geometry.** The VIS camera is the left view, the NIR camera the right one. The Middlebury
  motorcycle keeps its real ground-truth disparity (``inf`` holes filled with the background
  neighbour of their row, image and disparity rescaled together). Other photographs get a synthetic
  depth: a ground plane whose disparity grows towards the bottom of the frame, with a slight tilt
  and low-frequency wobble, plus a few SLIC segments lifted to fronto-parallel layers that stand
  on the plane, which creates depth edges aligned with image edges. The right disparity is the
  z-buffered forward warp of the left one (piecewise-linear per row, the larger disparity wins);
  disoccluded right pixels get the disparity of the background neighbour and their intensities
  are extended from the background side by mirroring. So ``NIR_r(y, x) = NIR_l(y, x + disp_r)``
  holds on every visible pixel, and ``NIR_l(y, x) = NIR_r(y, x - disp_l)`` on every pixel that is
  not occluded in the right view.
* **NIR spectral response** (rendered from the clean scene, then warped to the right view):
  a red-weighted channel mix (NIR correlates with red far more than with blue); vegetation (excess
  green) is strongly boosted, as chlorophyll-bearing leaves reflect ~50 % in the NIR; blue (sky,
  water) is darkened; saturated dyes and pigments become brighter (many colourants are transparent
  in the NIR); skin is brighter and smoother (NIR penetrates skin and blurs its surface detail);
  material micro-texture gets a local-contrast boost. Haze in the NIR is ~0.18 times as thick as in
  the visible (Rayleigh scattering ~ wavelength^-4, (550/850)^4 = 0.18). The NIR camera auto-exposes
  and adds about one grey level of noise. The NIR is thus *not* the VIS luminance: a network has to
  learn which structures transfer.
* **VIS camera effects** (applied per scene, drawn from the seed, never all at once, at least one):
  *haze*, ``I = J t + A (1 - t)`` with ``t = exp(-1.5 beta z)`` and ``z`` the normalised depth (0
  nearest), which lowers the contrast of distant texture; *low light*, a gain bringing the mean linear
  luminance to 0.015-0.04 followed by Poisson-Gaussian noise, so dark regions lose texture to noise and
  quantisation; *over-exposure*, a gain mapping the 70-90th luminance percentile to white, so 10-30 %
  of the frame saturates (hue shifts included); *sensor noise*.
  Effects are applied in linear light (gamma 2.2). The HR VIS written as ground truth is what the VIS
  camera sees, and the LR VIS is ``imresize(HR VIS, 1/s)``. Where the VIS is hazy, dark, noisy or
  clipped, the NIR still carries the clean, contrasted structure: exactly the cross-spectral prior
  the network is meant to exploit.

Command line: ``python tools/make_synthetic_rgbnir.py --out datasets/Synthetic --scales 2 4 --seed 0``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from cspsr_arch.image_io import decode_disparity, encode_disparity
from cspsr_arch.prep.split import meta_keys, meta_line, write_meta_info, write_sample
from cspsr_arch.prep.split import prepare_split as _prepare_split
from cspsr_arch.prep.synthetic.scenes import EXTRA_SCENES, SCENES, crop_box, load_scene, right_view, scene_rng
from cspsr_arch.prep.synthetic.spectra import GAMMA, nir_response

# Test scenes: photographs with fine structure at every depth, the Middlebury motorcycle (with its real
# disparity) and the cameraman. Dark, noisy scenes stay in training: there, noise in the ground truth,
# which no method can predict, dominates the PSNR; smooth hazy ones (coffee) leave little to super-resolve.
DEFAULT_TEST_SCENES: Tuple[str, ...] = ('motorcycle', 'camera')


def vis_camera(rgb: np.ndarray, z: np.ndarray,
               rng: np.random.Generator) -> Tuple[np.ndarray, List[str], Optional[np.ndarray]]:
    """What the VIS camera records of a clean scene: haze, low light / over-exposure, noise, clipping.

    Args:
        rgb: clean scene (H, W, 3) in [0, 1].
        z: normalised depth (0 nearest, 1 farthest), (H, W).
        rng: random generator (chooses the effects and their strength).

    Returns:
        (VIS image float32 (H, W, 3) in [0, 1], names of the effects, NIR haze transmission or None).
    """
    haze, noise = rng.random() < 0.4, rng.random() < 0.5
    mode = ['normal', 'low_light', 'overexposed'][int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
    if not haze and not noise and mode == 'normal':
        pick = int(rng.integers(3))
        haze, mode = pick == 0, ('low_light' if pick == 1 else 'overexposed' if pick == 2 else mode)
    noise = noise or mode == 'low_light'
    lin = rgb.astype(np.float64) ** GAMMA
    effects: List[str] = []
    t_nir = None
    if haze:
        beta = rng.uniform(0.4, 1.1)
        air = rng.uniform(0.5, 0.8) * np.array([0.95, 0.98, 1.03])
        t = np.exp(-1.5 * beta * z)[..., None]
        lin = lin * t + air * (1 - t)
        t_nir = np.exp(-0.18 * 1.5 * beta * z).astype(np.float32)
        effects.append(f'haze(beta={beta:.2f})')
    if mode != 'normal':  # exposure relative to the scene: a mean linear level, or a clipped fraction
        lum = lin @ np.array([0.2126, 0.7152, 0.0722])
        if mode == 'low_light':
            gain = float(np.clip(rng.uniform(0.015, 0.04) / max(lum.mean(), 1e-4), 0.02, 0.5))
        else:
            gain = float(np.clip(1.0 / max(np.percentile(lum, rng.uniform(70, 90)), 1e-3), 1.3, 4.0))
        lin = lin * gain
        effects.append(f'{mode}(gain={gain:.2f})')
    if noise:
        # A camera pipeline denoises before the image is stored: the residual noise is a few grey levels
        # (stronger would make the ground truth itself unpredictable and no SR method measurable).
        k = rng.uniform(1500, 4000) if mode == 'low_light' else rng.uniform(6000, 20000)
        read = rng.uniform(0.0002, 0.0006)
        lin = lin + np.sqrt(np.maximum(lin, 0) / k + read ** 2) * rng.standard_normal(lin.shape)
        effects.append(f'noise(k={k:.0f})')
    return (np.clip(lin, 0, 1) ** (1 / GAMMA)).astype(np.float32), effects, t_nir


# The disparity encoding of datasets/README.md, owned by the data pipeline that decodes it.
encode_disp = encode_disparity
decode_disp = decode_disparity


def render_scene(name: str, seed: int = 0, variant: int = 0, max_size: int = 480,
                 scales: Sequence[int] = (2, 4), vis_effects: bool = True) -> Dict[str, object]:
    """Render one scene: HR VIS (left), NIR (right and, for checks, left), disparities.

    Args:
        name: one of ``SCENES``.
        seed: data set seed.
        variant: variant index (odd variants are mirrored, each has its own effects and depth).
        max_size: longest HR side before cropping.
        scales: SR scales; HR sides are cropped to multiples of their lcm.
        vis_effects: Apply the VIS camera effects to the HR VIS (False: the HR VIS is the clean scene and the
            NIR has no haze, for the camera-degradation protocol, which degrades the LR inputs itself; the
            random draws are the same, so geometry and NIR noise do not change).

    Returns:
        dict with float32 arrays ``clean`` / ``vis`` (H, W, 3 RGB), ``nir`` (right view), ``nir_left``
        (noise-free left-view NIR), ``disp_l``, ``disp_r``, bool ``occ_left``, and ``effects``.
    """
    rng = scene_rng(name, seed, variant)
    rgb, d_l = load_scene(name, rng, max_size, flip=variant % 2 == 1)
    box = crop_box(rgb.shape[0], rgb.shape[1], math.lcm(*[int(s) for s in scales]))
    rgb, d_l = np.ascontiguousarray(rgb[box]), np.ascontiguousarray(d_l[box])
    w = d_l.shape[1]
    z = (d_l.max() - d_l) / max(float(d_l.max() - d_l.min()), 1e-6)
    vis, effects, t_nir = vis_camera(rgb, z, rng)
    if not vis_effects:
        vis, effects, t_nir = rgb.astype(np.float32), [], None
    nir_left = nir_response(rgb, t_nir)
    nir, d_r, _ = right_view(nir_left, d_l)
    xs = np.arange(w, dtype=np.float32)[None, :]
    nir = nir + 0.004 * rng.standard_normal(nir.shape).astype(np.float32)
    back = np.round(xs - d_l).astype(np.int64)
    seen = np.take_along_axis(d_r, np.clip(back, 0, w - 1), 1)
    occ_left = (back < 0) | (seen > d_l + 1.0)
    return {'clean': rgb, 'vis': vis, 'nir': np.clip(nir, 0, 1), 'nir_left': nir_left, 'disp_l': d_l,
            'disp_r': d_r.astype(np.float32), 'occ_left': occ_left, 'effects': effects}


def build_dataset(out_dir: str | Path, scales: Sequence[int] = (2, 4), seed: int = 0,
                  test_scenes: Optional[Sequence[str]] = None, scenes: Optional[Sequence[str]] = None,
                  max_size: int = 480, variants: int = 2, test_variants: int = 1, vis_effects: bool = True,
                  overwrite: bool = False) -> Tuple[Dict[str, List[str]], List[dict]]:
    """Generate the data set; returns the split keys and one info record per written key.

    Args:
        out_dir: output folder; ``<out_dir>/train`` and ``<out_dir>/test`` are written.
        scales: SR scales (integers >= 2).
        seed: seed; the same seed writes byte-identical files.
        test_scenes: scenes of the test split (default ``DEFAULT_TEST_SCENES`` among ``scenes``).
        scenes: scenes to use (default all of ``SCENES``; ``EXTRA_SCENES`` may be added, for test splits).
        max_size: longest HR side.
        variants: variants per train scene.
        test_variants: variants per test scene (keys ``<scene>`` with one, ``<scene>_v<k>`` with more): other
            depth, mirroring and camera effects of the same photographs, never seen in training.
        vis_effects: see :func:`render_scene`.
        overwrite: replace non-empty split folders.

    Returns:
        ({'train': keys, 'test': keys}, infos).
    """
    scales = sorted({int(s) for s in scales})
    if not scales or min(scales) < 2:
        raise ValueError(f'scales must be integers >= 2, got {scales}')
    scenes = list(SCENES if scenes is None else scenes)
    if test_scenes is None:
        test_scenes = [s for s in DEFAULT_TEST_SCENES if s in scenes]
    unknown = sorted(set(scenes) - set(SCENES + EXTRA_SCENES)) + sorted(set(test_scenes) - set(scenes))
    if unknown:
        raise ValueError(f'unknown scenes {unknown}; choose from {SCENES + EXTRA_SCENES}')
    if variants < 1 or test_variants < 1 or max_size < 4 * math.lcm(*scales):
        raise ValueError('variants and test_variants must be >= 1 and max_size at least 4 * lcm(scales)')
    plan = {'train': [(n, v) for n in scenes if n not in test_scenes for v in range(variants)],
            'test': [(n, v) for n in scenes if n in test_scenes for v in range(test_variants)]}
    plan = {split: items for split, items in plan.items() if items}
    for split in plan:
        _prepare_split(Path(out_dir) / split, overwrite)
    keys: Dict[str, List[str]] = {}
    infos: List[dict] = []
    for split, items in plan.items():
        root = Path(out_dir) / split
        root.mkdir(parents=True, exist_ok=True)
        meta = []
        for name, v in items:
            key = name if split == 'test' and test_variants == 1 else f'{name}_v{v}'
            sample = render_scene(name, seed, v, max_size, scales, vis_effects)
            write_sample(root, key, sample, scales)
            h, w = sample['disp_l'].shape
            meta.append(meta_line(key, h, w))
            infos.append({'split': split, 'key': key, 'size': (h, w), 'effects': sample['effects'],
                          'disp_l': (float(sample['disp_l'].min()), float(sample['disp_l'].max())),
                          'occluded': float(sample['occ_left'].mean())})
        write_meta_info(root, meta)
        keys[split] = meta_keys(meta)
    return keys, infos


def make_dataset(out_dir: str | Path, scales: Sequence[int] = (2, 4), seed: int = 0, **kwargs) -> Dict[str, List[str]]:
    """Generate the data set (see :func:`build_dataset` for the keyword arguments).

    Args:
        out_dir: output folder.
        scales: SR scales.
        seed: seed.
        **kwargs: ``test_scenes``, ``scenes``, ``max_size``, ``variants``, ``overwrite``.

    Returns:
        {'train': [keys], 'test': [keys]} (a split without scenes is absent).
    """
    return build_dataset(out_dir, scales, seed, **kwargs)[0]
