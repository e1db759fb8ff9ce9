"""Scenes and stereo geometry of the synthetic cross-spectral set (``tools/make_synthetic_rgbnir.py``); the
geometry also makes the right views of ``tools/make_semisynthetic_rgbnir.py``.

Clean RGB scenes come from photographs that ship inside scikit-image (read from its ``data`` folder,
never downloaded), each with a left disparity: the Middlebury motorcycle's real one, or a synthetic
ground plane with fronto-parallel layers. The row operations turn a left disparity into the right
one (z-buffered forward warp) and fill disocclusions from the background side.
"""
import zlib
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np

PHOTOS = {'astronaut': 'astronaut.png', 'chelsea': 'chelsea.png', 'coffee': 'coffee.png', 'rocket': 'rocket.jpg',
          'retina': 'retina.jpg', 'hubble': 'hubble_deep_field.jpg', 'ihc': 'ihc.png', 'color': 'color.png'}
# Grey photographs, coloured by a smooth random tint field (more content for training).
GREY_PHOTOS = {'camera': 'camera.png', 'coins': 'coins.png', 'moon': 'moon.png', 'page': 'page.png',
               'text': 'text.png'}
SCENES: Tuple[str, ...] = ('astronaut', 'chelsea', 'coffee', 'rocket', 'motorcycle', 'retina', 'hubble', 'ihc',
                           'color', 'textures', *GREY_PHOTOS)
# More scenes, only for test splits (the benchmark's ``cpu`` preset tests on 10 scenes): the other pictures that
# ship with scikit-image and are not part of ``textures``. They have little fine texture (a microscope cell, a
# motion-blurred clock, a retina close-up, a rendered phantom, the scikit-image logo), so they are kept out of
# the default scene list (the demo's data) and add variety, not difficulty, to a test split.
EXTRA_PHOTOS = {'phantom': 'phantom.png', 'logo': 'logo.png'}
EXTRA_GREY_PHOTOS = {'cell': 'cell.png', 'clock': 'clock_motion.png', 'microaneurysms': 'microaneurysms.png'}
EXTRA_SCENES: Tuple[str, ...] = (*EXTRA_PHOTOS, *EXTRA_GREY_PHOTOS)
_COLOUR_FILES, _GREY_FILES = {**PHOTOS, **EXTRA_PHOTOS}, {**GREY_PHOTOS, **EXTRA_GREY_PHOTOS}


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


def scene_rng(name: str, seed: int, variant: int) -> np.random.Generator:
    """Random generator of one (scene, variant), independent of the other scenes.

    Args:
        name: scene name or key.
        seed: data set seed.
        variant: variant index.
    """
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(variant)])


def disparity_range(rng: np.random.Generator, longest_side: int) -> Tuple[float, float]:
    """Random (farthest, largest) disparity of a scene, in pixels, for an image whose longest side is given.

    A 480-pixel image gets 1-6 pixels at the far end and 24-44 at most (a stereo rig with a short
    baseline); larger images scale these in proportion.

    Args:
        rng: random generator (two draws).
        longest_side: longest image side in pixels.
    """
    ref = longest_side / 480.0
    return rng.uniform(1.0, 6.0) * ref, rng.uniform(24.0, 44.0) * ref


def crop_box(h: int, w: int, mult: int) -> Tuple[slice, slice]:
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


def right_view(img_left: np.ndarray, d_l: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The right view of a left-view image with a known left disparity, and the right disparity.

    ``d_r`` is the z-buffered forward warp of ``d_l`` (:func:`forward_warp_disparity`); the image is
    resampled as ``img_r(y, x) = img_l(y, x + d_r(y, x))`` (bicubic) and disoccluded pixels are filled by
    mirroring from their background side (:func:`mirror_fill`).

    Args:
        img_left: float32 image (H, W) or (H, W, C) of the left view.
        d_l: left disparity (H, W), pixels, >= 0.

    Returns:
        (right image float32, right disparity float32 (H, W), bool disocclusion mask (H, W)).
    """
    h, w = d_l.shape
    d_r, holes = forward_warp_disparity(d_l)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
    img = cv2.remap(img_left, xs + d_r, ys, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return mirror_fill(img, holes, d_r), d_r, holes


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


def tint(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour a grey image by a smooth random per-channel gain field in [0.55, 1].

    Args:
        grey: (H, W) image in [0, 1].
        rng: random generator.

    Returns:
        float32 (H, W, 3) image in [0, 1].
    """
    h, w = grey.shape
    field = cv2.resize(rng.uniform(0.55, 1.0, (3, 3, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(grey[..., None] * field, 0, 1).astype(np.float32)


def load_scene(name: str, rng: np.random.Generator, max_size: int, flip: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Clean RGB scene and its left disparity (before cropping), sized to ``max_size``.

    Args:
        name: one of ``SCENES`` or ``EXTRA_SCENES``.
        rng: random generator.
        max_size: longest HR side.
        flip: mirror the scene horizontally (a different, equally valid left view).

    Returns:
        (rgb float32 (H, W, 3) in [0, 1], disparity float32 (H, W)).
    """
    dmin, dmax = disparity_range(rng, max_size)
    if name == 'textures':
        rgb, d = textures_scene(rng, max_size, dmin, dmax)
    elif name == 'motorcycle':
        rgb = _read('motorcycle_left.png')
        raw = np.load(_data_file('motorcycle_disp.npz'))['arr_0'].astype(np.float32)
        d = fill_background(raw, np.isfinite(raw))
        rgb, f = _fit(rgb, max_size)
        d = cv2.resize(d, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA) * f
        d *= rng.uniform(0.85, 1.1)  # another stereo baseline
    elif name in _COLOUR_FILES:
        rgb = _fit(_read(_COLOUR_FILES[name]), max_size)[0]
        d = None
    elif name in _GREY_FILES:
        rgb = tint(_fit(_read(_GREY_FILES[name], gray=True), max_size)[0], rng)
        d = None
    else:
        raise ValueError(f'unknown scene {name!r}; choose from {SCENES + EXTRA_SCENES}')
    if flip:
        rgb = rgb[:, ::-1].copy()
        d = None if d is None else d[:, ::-1].copy()
    if d is None:
        d = synth_disparity(rgb, rng, dmin, dmax)
    return rgb.astype(np.float32), np.clip(d, 0, 255.0).astype(np.float32)
