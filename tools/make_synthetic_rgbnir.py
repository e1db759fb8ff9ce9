#!/usr/bin/env python
"""Build a small, deterministic cross-spectral stereo data set (VIS left, NIR right) from the
photographs that ship inside scikit-image (nothing is downloaded).

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

Usage::

    python tools/make_synthetic_rgbnir.py --out datasets/Synthetic --scales 2 4 --seed 0
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

PHOTOS = {'astronaut': 'astronaut.png', 'chelsea': 'chelsea.png', 'coffee': 'coffee.png', 'rocket': 'rocket.jpg',
          'retina': 'retina.jpg', 'hubble': 'hubble_deep_field.jpg', 'ihc': 'ihc.png', 'color': 'color.png'}
SCENES: Tuple[str, ...] = ('astronaut', 'chelsea', 'coffee', 'rocket', 'motorcycle', 'retina', 'hubble', 'ihc',
                           'color', 'textures')
# Test scenes: natural photographs with fine structure at every depth (the Middlebury motorcycle with its
# real disparity, and coffee). Dark, noisy scenes stay in training: in them, noise in the ground truth,
# which no method can predict, dominates the PSNR.
DEFAULT_TEST_SCENES: Tuple[str, ...] = ('motorcycle', 'coffee')
GAMMA = 2.2
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]


def _data_file(fname: str) -> Path:
    """Path of a file shipped in scikit-image's ``data`` folder (raises instead of downloading)."""
    import skimage.data
    path = Path(skimage.data.__file__).resolve().parent / fname
    if not path.is_file():
        raise FileNotFoundError(f'{path} is not shipped with this scikit-image; nothing is downloaded')
    return path


def _read(fname: str, gray: bool = False) -> np.ndarray:
    """Read a packaged image as float32 in [0, 1] (RGB, or single channel if ``gray``)."""
    img = cv2.imread(str(_data_file(fname)), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    img = img if gray else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img.astype(np.float32) / 255.0


def _fit(img: np.ndarray, max_size: int) -> Tuple[np.ndarray, float]:
    """Downscale (area) so that the longest side is at most ``max_size``; returns (image, factor)."""
    f = min(1.0, max_size / max(img.shape[:2]))
    if f < 1.0:
        size = (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return img, f


def _crop_box(h: int, w: int, mult: int) -> Tuple[slice, slice]:
    """Centred crop making both sides divisible by ``mult``."""
    nh, nw = h - h % mult, w - w % mult
    if nh == 0 or nw == 0:
        raise ValueError(f'image {h}x{w} too small for scale multiple {mult}')
    t, l = (h - nh) // 2, (w - nw) // 2
    return slice(t, t + nh), slice(l, l + nw)


def _row_neighbours(valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per pixel, the column of the nearest valid pixel at or left of it (-1 if none), and at or right of it (W)."""
    w = valid.shape[1]
    cols = np.arange(w)[None, :]
    left = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    return left, right


def _background_values(d: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disparity of the left/right valid row neighbours (inf where none) and the background (smaller) one."""
    left, right = _row_neighbours(valid)
    w = d.shape[1]
    dl = np.where(left >= 0, np.take_along_axis(d, np.clip(left, 0, w - 1), 1), np.inf)
    dr = np.where(right < w, np.take_along_axis(d, np.clip(right, 0, w - 1), 1), np.inf)
    return dl, dr, np.minimum(dl, dr)


def fill_background(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill invalid disparities with the background (smaller) of their row neighbours.

    Args:
        d: disparity map (H, W).
        valid: bool mask of trusted pixels.

    Returns:
        float32 dense disparity.
    """
    bg = _background_values(d, valid)[2]
    out = np.where(valid, d, bg)
    return np.where(np.isfinite(out), out, np.median(d[valid]) if valid.any() else 0.0).astype(np.float32)


def forward_warp_disparity(d_l: np.ndarray, jump: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """Right disparity by z-buffered forward warping of the left one (larger disparity wins).

    Each row is a piecewise-linear surface between neighbouring pixels whose disparities differ by
    less than ``jump`` (depth edges are not interpolated across); a left pixel at ``x`` lands at
    ``x - d_l``. Uncovered right pixels (disocclusions, out of frame) are filled from the background.

    Args:
        d_l: left disparity (H, W), >= 0.
        jump: disparity difference between neighbours treated as a depth discontinuity.

    Returns:
        (d_r float32 (H, W), holes bool (H, W)).
    """
    h, w = d_l.shape
    d = d_l.astype(np.float64)
    pos = np.arange(w, dtype=np.float64)[None, :] - d
    a, b, da, db = pos[:, :-1], pos[:, 1:], d[:, :-1], d[:, 1:]
    same_surface = np.abs(db - da) < jump
    d_r = np.full(h * w, -1.0)
    rows = (np.arange(h) * w)[:, None]
    lo = np.ceil(a)
    for k in (0, 1):
        xr = lo + k
        m = same_surface & (xr <= b) & (xr >= 0) & (xr <= w - 1)
        val = da + (xr - a) / np.maximum(b - a, 1e-9) * (db - da)
        np.maximum.at(d_r, (rows + xr.astype(np.int64))[m], val[m])
    d_r = d_r.reshape(h, w)
    holes = d_r < 0
    return fill_background(d_r, ~holes), holes


def mirror_fill(img: np.ndarray, holes: np.ndarray, d_r: np.ndarray) -> np.ndarray:
    """Fill hole pixels by mirroring the row from their background side (smaller disparity neighbour).

    Args:
        img: image (H, W) or (H, W, C) in the right view.
        holes: bool mask of pixels to fill.
        d_r: right disparity used to decide which side is the background.

    Returns:
        filled copy of ``img``.
    """
    valid = ~holes
    h, w = holes.shape
    left, right = _row_neighbours(valid)
    dl, dr, _ = _background_values(d_r, valid)
    x = np.broadcast_to(np.arange(w)[None, :], (h, w))
    use_left = dl <= dr
    src = np.where(use_left, 2 * left + 1 - x, 2 * right - 1 - x)
    near = np.where(use_left, left, right)
    src = np.clip(src, 0, w - 1)
    src = np.where(np.take_along_axis(valid, src, 1), src, near)
    src = np.where(holes, np.clip(src, 0, w - 1), x)
    ys = np.broadcast_to(np.arange(h)[:, None], (h, w))
    return img[ys, src]


def synth_disparity(rgb: np.ndarray, rng: np.random.Generator, dmin: float, dmax: float) -> np.ndarray:
    """Plausible left disparity for a photograph: ground plane + fronto-parallel SLIC segment layers.

    Args:
        rgb: clean image (H, W, 3) in [0, 1].
        rng: random generator (consumed deterministically).
        dmin: disparity of the farthest point.
        dmax: largest disparity allowed.

    Returns:
        float32 (H, W) disparity in [0, dmax].
    """
    from skimage.segmentation import slic
    h, w = rgb.shape[:2]
    span = dmax - dmin
    yy = np.linspace(0.0, 1.0, h)[:, None]
    xx = np.linspace(-0.5, 0.5, w)[None, :]
    horizon = rng.uniform(0.0, 0.45)
    ground = np.clip((yy - horizon) / (1.0 - horizon), 0, 1) ** rng.uniform(1.0, 1.8)
    plane = dmin + rng.uniform(0.35, 0.65) * span * ground + rng.uniform(-0.08, 0.08) * span * xx
    wobble = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), max(w, h) / 10)
    plane = np.maximum(plane + 0.03 * span * wobble / (np.abs(wobble).max() + 1e-6), 0.5 * dmin)
    labels = slic(rgb, n_segments=int(rng.integers(16, 33)), compactness=float(rng.uniform(8, 20)),
                  start_label=0, channel_axis=-1)
    n = int(labels.max()) + 1
    ys, xs = np.mgrid[0:h, 0:w]
    area = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    cy = np.bincount(labels.ravel(), ys.ravel(), n) / np.maximum(area, 1) / h
    cx = np.bincount(labels.ravel(), xs.ravel(), n) / np.maximum(area, 1) / w
    bottom = np.zeros(n, np.int64)
    np.maximum.at(bottom, labels.ravel(), ys.ravel())
    frac = area / (h * w)
    weight = frac * np.exp(-((cx - 0.5) ** 2 + (cy - 0.55) ** 2) / (2 * 0.25 ** 2))
    weight[(frac < 0.005) | (frac > 0.3)] = 0
    d = plane.astype(np.float32)
    if weight.sum() > 0:
        k = min(int(rng.integers(2, 6)), int((weight > 0).sum()))
        chosen = np.sort(rng.choice(n, size=k, replace=False, p=weight / weight.sum()))
        for i in chosen:
            col = min(w - 1, int(cx[i] * w))
            value = min(plane[bottom[i], col] + rng.uniform(0.1, 0.4) * span, dmax)
            d[labels == i] = np.maximum(d[labels == i], value)
    return np.clip(d, 0, dmax).astype(np.float32)


def _texture_tile(fname: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a packaged grey texture, rescaled, tiled to (h, w), normalised to [0, 1]."""
    tex = _read(fname, gray=True)
    s = rng.uniform(0.5, 1.0)
    tex = cv2.resize(tex, (max(8, round(tex.shape[1] * s)), max(8, round(tex.shape[0] * s))),
                     interpolation=cv2.INTER_AREA)
    reps = (h // tex.shape[0] + 2, w // tex.shape[1] + 2)
    tex = np.tile(tex, reps)
    t, l = int(rng.integers(0, tex.shape[0] - h)), int(rng.integers(0, tex.shape[1] - w))
    tex = tex[t:t + h, l:l + w]
    return (tex - tex.min()) / (tex.max() - tex.min() + 1e-6)


def textures_scene(rng: np.random.Generator, max_size: int, dmin: float, dmax: float) -> Tuple[np.ndarray, np.ndarray]:
    """Composite scene: blue sky, brick wall, grass ground plane and gravel rocks standing on it.

    Args:
        rng: random generator.
        max_size: width of the scene (height is 3/4 of it).
        dmin: disparity of the sky.
        dmax: largest disparity.

    Returns:
        (rgb float32 (H, W, 3), left disparity float32 (H, W)).
    """
    w, h = max_size, round(0.75 * max_size)
    span = dmax - dmin
    sky_end, wall_end = int(h * rng.uniform(0.08, 0.18)), int(h * rng.uniform(0.38, 0.52))
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    rgb = np.broadcast_to((1 - yy) * np.float32([0.30, 0.50, 0.90]) + yy * np.float32([0.65, 0.78, 0.95]),
                          (h, w, 3)).copy()
    brick = _texture_tile('brick.png', h, w, rng)[..., None]
    grass = _texture_tile('grass.png', h, w, rng)[..., None]
    gravel = _texture_tile('gravel.png', h, w, rng)[..., None]
    rgb[sky_end:wall_end] = (np.float32([0.62, 0.30, 0.22]) * (0.45 + 0.8 * brick))[sky_end:wall_end]
    rgb[wall_end:] = (np.float32([0.20, 0.50, 0.12]) * (0.35 + 1.0 * grass))[wall_end:]
    d = np.full((h, w), dmin, np.float32)
    d[sky_end:wall_end] = dmin + 0.12 * span
    g = np.clip((np.arange(h) - wall_end) / max(1, h - 1 - wall_end), 0, 1)[:, None]
    d[wall_end:] = np.broadcast_to(dmin + 0.12 * span + 0.5 * span * g, (h, w))[wall_end:]
    n_rocks = int(rng.integers(2, 5))
    rocks = sorted((int(rng.integers(wall_end + h // 10, h)), int(rng.integers(0, w))) for _ in range(n_rocks))
    ys, xs = np.mgrid[0:h, 0:w]
    for yb, xc in rocks:
        ry, rx = rng.uniform(0.06, 0.16) * h, rng.uniform(0.06, 0.14) * w
        mask = ((ys - (yb - ry)) / ry) ** 2 + ((xs - xc) / rx) ** 2 <= 1
        tint = np.float32([0.55, 0.50, 0.44]) * rng.uniform(0.8, 1.1)
        rgb[mask] = (tint * (0.4 + 0.9 * gravel))[mask]
        d[mask] = min(float(d[min(yb, h - 1), 0]) + rng.uniform(0.05, 0.3) * span, dmax)
    return np.clip(rgb, 0, 1), d


def load_scene(name: str, rng: np.random.Generator, max_size: int, flip: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Clean RGB scene and its left disparity (before cropping), sized to ``max_size``.

    Args:
        name: one of ``SCENES``.
        rng: random generator.
        max_size: longest HR side.
        flip: mirror the scene horizontally (a different, equally valid left view).

    Returns:
        (rgb float32 (H, W, 3) in [0, 1], disparity float32 (H, W)).
    """
    ref = max_size / 480.0
    dmin, dmax = rng.uniform(1.0, 6.0) * ref, rng.uniform(24.0, 44.0) * ref
    if name == 'textures':
        rgb, d = textures_scene(rng, max_size, dmin, dmax)
    elif name == 'motorcycle':
        rgb = _read('motorcycle_left.png')
        raw = np.load(_data_file('motorcycle_disp.npz'))['arr_0'].astype(np.float32)
        d = fill_background(raw, np.isfinite(raw))
        rgb, f = _fit(rgb, max_size)
        d = cv2.resize(d, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA) * f
        d *= rng.uniform(0.85, 1.1)  # another stereo baseline
    elif name in PHOTOS:
        rgb = _fit(_read(PHOTOS[name]), max_size)[0]
        d = None
    else:
        raise ValueError(f'unknown scene {name!r}; choose from {SCENES}')
    if flip:
        rgb = rgb[:, ::-1].copy()
        d = None if d is None else d[:, ::-1].copy()
    if d is None:
        d = synth_disparity(rgb, rng, dmin, dmax)
    return rgb.astype(np.float32), np.clip(d, 0, 255.0).astype(np.float32)


def nir_response(rgb: np.ndarray, t_nir: Optional[np.ndarray] = None) -> np.ndarray:
    """NIR image (display values in [0, 1]) of a clean RGB scene; see the module docstring.

    Args:
        rgb: clean scene (H, W, 3), display-referred [0, 1].
        t_nir: optional NIR haze transmission (H, W).

    Returns:
        float32 (H, W) NIR image.
    """
    r, g, b = (rgb[..., i] for i in range(3))
    lin = rgb ** GAMMA
    base = 0.6 * lin[..., 0] + 0.3 * lin[..., 1] + 0.1 * lin[..., 2]
    mrb, mrg = np.maximum(r, b), np.maximum(r, g)
    veg = cv2.GaussianBlur(np.clip(4 * (g - mrb) / (g + mrb + 0.02), 0, 1), (0, 0), 1.0)
    blue = cv2.GaussianBlur(np.clip(3 * (b - mrg) / (b + mrg + 0.02), 0, 1), (0, 0), 1.0)
    sat = (rgb.max(-1) - rgb.min(-1)) / (rgb.max(-1) + 1e-3)
    nir = base * (1 + 2.5 * veg) * (1 - 0.75 * blue) + 0.12 * sat * (1 - blue) * (1 - veg)
    ycc = cv2.cvtColor((rgb * 255).astype(np.uint8), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    skin = ((ycc[..., 0] > 50) & (ycc[..., 1] > 135) & (ycc[..., 1] < 175) & (ycc[..., 2] > 80) & (ycc[..., 2] < 130))
    skin = cv2.GaussianBlur(skin.astype(np.float32), (0, 0), 2.0)
    nir = nir * (1 - skin) + skin * 1.15 * cv2.GaussianBlur(nir, (0, 0), 2.5)
    y = 0.3 * lin[..., 0] + 0.59 * lin[..., 1] + 0.11 * lin[..., 2]
    nir = nir + 0.25 * (y - cv2.GaussianBlur(y, (0, 0), 2.0))
    if t_nir is not None:
        nir = nir * t_nir + 0.5 * np.percentile(nir, 99) * (1 - t_nir)
    nir = np.clip(nir * 0.9 / max(float(np.percentile(nir, 99.5)), 1e-3), 0, 1)
    return (nir ** (1 / GAMMA)).astype(np.float32)


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


def to_u8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] image to uint8 (clip, round)."""
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def encode_disp(d: np.ndarray) -> np.ndarray:
    """Disparity (pixels) to the 16-bit PNG encoding ``round(d * 256)`` (clipped to 0..65535)."""
    return np.clip(np.round(np.asarray(d, np.float64) * 256), 0, 65535).astype(np.uint16)


def decode_disp(v: np.ndarray) -> np.ndarray:
    """16-bit PNG disparity back to float32 pixels."""
    return v.astype(np.float32) / 256.0


def scene_rng(name: str, seed: int, variant: int) -> np.random.Generator:
    """Random generator of one (scene, variant), independent of the other scenes."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(variant)])


def render_scene(name: str, seed: int = 0, variant: int = 0, max_size: int = 480,
                 scales: Sequence[int] = (2, 4)) -> Dict[str, object]:
    """Render one scene: HR VIS (left), NIR (right and, for checks, left), disparities.

    Args:
        name: one of ``SCENES``.
        seed: data set seed.
        variant: variant index (odd variants are mirrored, each has its own effects and depth).
        max_size: longest HR side before cropping.
        scales: SR scales; HR sides are cropped to multiples of their lcm.

    Returns:
        dict with float32 arrays ``clean`` / ``vis`` (H, W, 3 RGB), ``nir`` (right view), ``nir_left``
        (noise-free left-view NIR), ``disp_l``, ``disp_r``, bool ``occ_left``, and ``effects``.
    """
    rng = scene_rng(name, seed, variant)
    rgb, d_l = load_scene(name, rng, max_size, flip=variant % 2 == 1)
    box = _crop_box(rgb.shape[0], rgb.shape[1], math.lcm(*[int(s) for s in scales]))
    rgb, d_l = np.ascontiguousarray(rgb[box]), np.ascontiguousarray(d_l[box])
    h, w = d_l.shape
    z = (d_l.max() - d_l) / max(float(d_l.max() - d_l.min()), 1e-6)
    vis, effects, t_nir = vis_camera(rgb, z, rng)
    nir_left = nir_response(rgb, t_nir)
    d_r, holes = forward_warp_disparity(d_l)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
    nir = cv2.remap(nir_left, xs + d_r, ys, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    nir = mirror_fill(nir, holes, d_r)
    nir = nir + 0.004 * rng.standard_normal(nir.shape).astype(np.float32)
    back = np.round(xs - d_l).astype(np.int64)
    seen = np.take_along_axis(d_r, np.clip(back, 0, w - 1), 1)
    occ_left = (back < 0) | (seen > d_l + 1.0)
    return {'clean': rgb, 'vis': vis, 'nir': np.clip(nir, 0, 1), 'nir_left': nir_left, 'disp_l': d_l,
            'disp_r': d_r.astype(np.float32), 'occ_left': occ_left, 'effects': effects}


def _prepare_split(root: Path, overwrite: bool) -> None:
    """Refuse a non-empty split folder unless ``overwrite``; then remove only what this tool writes."""
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f'{root} exists and is not empty; pass --overwrite (overwrite=True) to replace it')
        import shutil
        for item in ('HR', 'LR_bicubic'):
            if (root / item).is_dir():
                shutil.rmtree(root / item)
        (root / 'meta_info.txt').unlink(missing_ok=True)


def write_sample(root: Path, key: str, sample: Dict[str, object], scales: Sequence[int]) -> None:
    """Write all HR and LR streams of one scene under a split folder.

    Args:
        root: split folder (``.../train``).
        key: file stem.
        sample: output of :func:`render_scene`.
        scales: SR scales.
    """
    from basicsr.utils.matlab_functions import imresize
    hr = {'VIS': cv2.cvtColor(to_u8(sample['vis']), cv2.COLOR_RGB2BGR), 'NIR': to_u8(sample['nir'])}
    disp = {'DISP_L': sample['disp_l'], 'DISP_R': sample['disp_r']}
    outputs = {('HR', s): img for s, img in hr.items()}
    outputs.update({('HR', s): encode_disp(d) for s, d in disp.items()})
    for s in scales:
        for stream, img in hr.items():
            outputs[(f'LR_bicubic/X{s}', stream)] = to_u8(imresize(img.astype(np.float32) / 255.0, 1.0 / s))
        for stream, d in disp.items():
            hh, ww = d.shape[0] // s, d.shape[1] // s
            outputs[(f'LR_bicubic/X{s}', stream)] = encode_disp(d.reshape(hh, s, ww, s).mean(axis=(1, 3)) / s)
    for (level, stream), img in outputs.items():
        folder = root / level / stream
        folder.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(folder / f'{key}.png'), img, PNG_PARAMS):
            raise OSError(f'could not write {folder / key}.png')


def build_dataset(out_dir: str | Path, scales: Sequence[int] = (2, 4), seed: int = 0,
                  test_scenes: Optional[Sequence[str]] = None, scenes: Optional[Sequence[str]] = None,
                  max_size: int = 480, variants: int = 2,
                  overwrite: bool = False) -> Tuple[Dict[str, List[str]], List[dict]]:
    """Generate the data set; returns the split keys and one info record per written key.

    Args:
        out_dir: output folder; ``<out_dir>/train`` and ``<out_dir>/test`` are written.
        scales: SR scales (integers >= 2).
        seed: seed; the same seed writes byte-identical files.
        test_scenes: scenes of the test split (default ``DEFAULT_TEST_SCENES`` among ``scenes``).
        scenes: scenes to use (default all of ``SCENES``).
        max_size: longest HR side.
        variants: variants per train scene (test scenes get one, variant 0).
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
    unknown = sorted(set(scenes) - set(SCENES)) + sorted(set(test_scenes) - set(scenes))
    if unknown:
        raise ValueError(f'unknown scenes {unknown}; choose from {SCENES}')
    if variants < 1 or max_size < 4 * math.lcm(*scales):
        raise ValueError('variants must be >= 1 and max_size at least 4 * lcm(scales)')
    plan = {'train': [(n, v) for n in scenes if n not in test_scenes for v in range(variants)],
            'test': [(n, 0) for n in scenes if n in test_scenes]}
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
            key = name if split == 'test' else f'{name}_v{v}'
            sample = render_scene(name, seed, v, max_size, scales)
            write_sample(root, key, sample, scales)
            h, w = sample['disp_l'].shape
            meta.append(f'{key}.png ({h},{w},3)')
            infos.append({'split': split, 'key': key, 'size': (h, w), 'effects': sample['effects'],
                          'disp_l': (float(sample['disp_l'].min()), float(sample['disp_l'].max())),
                          'occluded': float(sample['occ_left'].mean())})
        (root / 'meta_info.txt').write_text('\n'.join(sorted(meta)) + '\n')
        keys[split] = sorted(m.split('.png')[0] for m in meta)
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output folder (writes OUT/train and OUT/test)')
    p.add_argument('--scales', type=int, nargs='+', default=[2, 4], help='SR scales (default: 2 4)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--scenes', nargs='+', default=None, choices=SCENES, help='scenes to use (default: all)')
    p.add_argument('--test-scenes', nargs='*', default=None, choices=SCENES,
                   help=f'scenes of the test split (default: {" ".join(DEFAULT_TEST_SCENES)})')
    p.add_argument('--max-size', type=int, default=480, help='longest HR side (default: 480)')
    p.add_argument('--variants', type=int, default=2, help='variants per train scene (default: 2)')
    p.add_argument('--overwrite', action='store_true', help='replace existing non-empty split folders')
    args = p.parse_args(argv)
    start = time.time()
    try:
        keys, infos = build_dataset(args.out, args.scales, args.seed, test_scenes=args.test_scenes, scenes=args.scenes,
                                    max_size=args.max_size, variants=args.variants, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    for info in infos:
        lo, hi = info['disp_l']
        print(f"{info['split']:5s} {info['key']:14s} {info['size'][0]:4d}x{info['size'][1]:<4d} "
              f"disp_l {lo:5.1f}..{hi:5.1f} px  occluded {100 * info['occluded']:4.1f}%  {', '.join(info['effects'])}")
    counts = ', '.join(f'{split}: {len(k)}' for split, k in keys.items())
    print(f'wrote {counts} scenes, scales {sorted(set(args.scales))}, to {args.out} in {time.time() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
