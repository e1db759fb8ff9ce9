"""Registration of a VIS/NIR pair taken by one camera: how far apart the two images are, and how to bring the
NIR onto the VIS.

Pairs such as the EPFL RGB-NIR scenes are two shots of one camera through two filters. They are registered
only as far as nothing moved between the shots: leaves, branches and clouds often did. Data preparation
(``tools/prepare_data.py``, ``tools/make_semisynthetic_rgbnir.py``) measures every pair and, by policy,
keeps, skips or registers the misregistered ones:

* **Measure** (:func:`measure_misalignment`): phase correlation of the gradient magnitudes of the VIS
  luminance and the NIR on overlapping tiles (gradient magnitudes, because the two spectra differ in sign
  and level, vegetation being dark in VIS and bright in NIR, but share edges); ``misalignment = |median
  tile shift| + 80th percentile of the tiles' distance to it`` in pixels. Registered pairs measure
  0.5-1.5 pixels (the spread of the estimate itself); a shifted pair, a pair with parallax or with moving
  content measures several.
* **Register** (:func:`register_nir`): the NIR is resampled onto the VIS by a dense, smooth displacement
  field; the VIS, the ground truth of super-resolution, is never touched. The field comes from the same
  tile shifts, coarse to fine (128-pixel tiles, then 64): tiles without structure (response under 0.2),
  with a shift beyond a quarter of the tile (too little overlap for a reliable peak), or whose shift departs by more than 2 pixels from the median of their neighbours are replaced by that
  median, the grid is interpolated bilinearly between tile centres, smoothed by a Gaussian of 16 pixels,
  and each level is composed with the previous one. Chosen by measurement over two alternatives, optical
  flow on gradient images (OpenCV's DIS and Farneback, with and without smoothing, alone or refining the
  tile field): on four registered country pairs whose NIR was moved by a known smooth field (a global
  shift plus local displacements of up to 6 pixels), the tile field recovered it with a mean end-point
  error of 0.4-0.8 pixels in textured scenes, the optical flows with 0.6-3.3 (they follow noise in flat
  regions such as sky). Samples that fall outside the NIR are mirrored at its border.
* **Check again**: a registered pair counts as registered when both the measure and a cross-check on
  another tile grid (tiles of 3/4 the measure's side, 96 pixels on large images, so tiles that the field
  was not estimated on) are within the limit, each on at least a fifth of the tiles (a NIR of another
  scene can match a few tiles by chance); otherwise it is reported as not registrable. The measure cannot see motion smaller than a tile (single
  leaves): a registered pair is registered at the scale of tens of pixels, not at every leaf.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

MISALIGNED_POLICIES = ('error', 'skip', 'keep', 'register')
"""What data preparation does with a pair whose misalignment exceeds the limit: refuse the data set, leave the
pair out, use it as it is, or register it (and leave it out when that fails)."""

MIN_RESPONSE = 0.2
"""Phase-correlation peak below which a tile (flat, or no common structure) is ignored."""
MIN_TILE_SHARE = 0.2
"""Share of the tiles that must have common structure for a registration to count (the real country pairs:
0.26-1.0; a NIR of another scene: under 0.2)."""


def gradient_magnitude(img: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a one-channel image after a Gaussian blur of one pixel (float32).

    Args:
        img: One-channel image (any dtype).
    """
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0)
    return np.hypot(cv2.Sobel(img, cv2.CV_32F, 1, 0), cv2.Sobel(img, cv2.CV_32F, 0, 1))


def _tile_side(tile: int, shape: Tuple[int, int]) -> int:
    """The tile side used on an image of ``shape``: shrunk to a quarter of the shorter side, at least 16."""
    return max(16, min(tile, min(shape) // 4))


def tile_shifts(g_vis: np.ndarray, g_nir: np.ndarray, tile: int, min_response: float = MIN_RESPONSE,
                max_shift: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift of the NIR relative to the VIS on overlapping tiles (step tile / 2) of two gradient images.

    Args:
        g_vis: Gradient magnitude of the VIS luminance (H, W).
        g_nir: Gradient magnitude of the NIR (H, W).
        tile: Tile side (see :func:`_tile_side`).
        min_response: Tiles with a weaker phase-correlation peak get NaN.
        max_shift: Tiles whose shift is larger in x or y, as a fraction of the tile side, get NaN too (the
            two tiles then overlap too little for a reliable peak); None: no limit (the measure's choice).

    Returns:
        (tile centre rows, tile centre columns, shifts (rows, columns, 2) as (dx, dy)): the NIR content at
        ``p + shift`` is the VIS content at ``p``; NaN where the tile was ignored.
    """
    h, w = g_vis.shape
    tile = _tile_side(tile, (h, w))
    step = tile // 2
    ys, xs = list(range(0, h - tile + 1, step)), list(range(0, w - tile + 1, step))
    window = cv2.createHanningWindow((tile, tile), cv2.CV_32F)
    shifts = np.full((len(ys), len(xs), 2), np.nan, np.float32)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            a, b = g_vis[y:y + tile, x:x + tile], g_nir[y:y + tile, x:x + tile]
            # zero-mean tiles: the windowed mean alone would correlate best at zero shift
            (dx, dy), response = cv2.phaseCorrelate(a - a.mean(), b - b.mean(), window)
            if response > min_response and (max_shift is None or max(abs(dx), abs(dy)) < max_shift * tile):
                shifts[i, j] = (dx, dy)
    centre = (tile - 1) / 2
    return np.array(ys, np.float32) + centre, np.array(xs, np.float32) + centre, shifts


def measure_misalignment(vis: np.ndarray, nir: np.ndarray, tile: int = 128,
                         min_response: float = MIN_RESPONSE) -> Dict[str, Optional[float]]:
    """How far a VIS/NIR pair is from registered (see the module docstring).

    Args:
        vis: uint8 VIS image (H, W, 3), BGR.
        nir: uint8 NIR image (H, W).
        tile: tile side (shrunk to a quarter of the shorter side for small images).
        min_response: phase-correlation peak below which a tile (flat, or no common structure) is ignored.

    Returns:
        dict: ``shift_x``, ``shift_y`` (median tile shift of the NIR relative to the VIS), ``spread`` (80th
        percentile of the tiles' distance to the median), ``misalignment`` (``|shift| + spread``) and
        ``tiles`` (tiles used), ``tile_share`` (their share of all tiles); the figures are None when no tile has
        enough structure.
    """
    _, _, grid = tile_shifts(gradient_magnitude(cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY)), gradient_magnitude(nir),
                             tile, min_response)
    shifts = grid.reshape(-1, 2)
    share = float(np.mean(~np.isnan(shifts[:, 0])))
    shifts = shifts[~np.isnan(shifts[:, 0])].astype(np.float64)
    if not len(shifts):
        return {'shift_x': None, 'shift_y': None, 'spread': None, 'misalignment': None, 'tiles': 0, 'tile_share': 0.0}
    median = np.median(shifts, axis=0)
    spread = float(np.percentile(np.hypot(*(shifts - median).T), 80))
    return {'shift_x': float(median[0]), 'shift_y': float(median[1]), 'spread': spread,
            'misalignment': float(np.hypot(*median)) + spread, 'tiles': len(shifts), 'tile_share': share}


def clean_shifts(grid: np.ndarray, max_deviation: float = 2.0) -> np.ndarray:
    """Replace ignored tiles (NaN) and outliers by the median of their measured 3x3 neighbours.

    A tile is an outlier when its shift is more than ``max_deviation`` pixels from that median (a wrong
    phase-correlation peak; true displacements vary smoothly from tile to tile). Tiles with no measured
    neighbour take the median of the whole grid, and a grid without any measured tile is all zeros.

    Args:
        grid: Shifts (rows, columns, 2), NaN where not measured.
        max_deviation: Outlier distance in pixels.
    """
    measured = ~np.isnan(grid[..., 0])
    if not measured.any():
        return np.zeros_like(grid)
    overall = np.median(grid[measured], axis=0)
    out = grid.copy()
    rows, cols = grid.shape[:2]
    for i in range(rows):
        for j in range(cols):
            near = grid[max(0, i - 1):i + 2, max(0, j - 1):j + 2].reshape(-1, 2)
            near = near[~np.isnan(near[:, 0])]
            median = np.median(near, axis=0) if len(near) else overall
            if not measured[i, j] or np.hypot(*(grid[i, j] - median)) > max_deviation:
                out[i, j] = median
    return out


def dense_field(centres_y: np.ndarray, centres_x: np.ndarray, grid: np.ndarray, shape: Tuple[int, int],
                smooth: float) -> np.ndarray:
    """The tile shifts as a displacement per pixel: bilinear between tile centres, constant beyond the outer
    centres, then a Gaussian blur of ``smooth`` pixels (float32 (H, W, 2)).

    Args:
        centres_y: Tile centre rows (increasing, equally spaced).
        centres_x: Tile centre columns.
        grid: Shifts (rows, columns, 2) without NaN.
        shape: Image (H, W).
        smooth: Gaussian sigma in pixels (0: none).
    """
    h, w = shape

    def index(centres: np.ndarray, size: int) -> np.ndarray:
        step = centres[1] - centres[0] if len(centres) > 1 else 1.0
        return np.clip((np.arange(size, dtype=np.float32) - centres[0]) / step, 0, len(centres) - 1)

    map_x = np.broadcast_to(index(centres_x, w)[None, :], (h, w)).astype(np.float32)
    map_y = np.broadcast_to(index(centres_y, h)[:, None], (h, w)).astype(np.float32)
    field = cv2.remap(np.ascontiguousarray(grid, np.float32), map_x, map_y, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    return cv2.GaussianBlur(field, (0, 0), smooth) if smooth > 0 else field


def _sample(img: np.ndarray, field: np.ndarray, interpolation: int) -> np.ndarray:
    """``img`` sampled at ``p + field(p)`` (mirrored at the border)."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(img, xs + field[..., 0], ys + field[..., 1], interpolation, borderMode=cv2.BORDER_REFLECT_101)


def compose(field: np.ndarray, increment: np.ndarray) -> np.ndarray:
    """The field that samples like ``field`` after ``increment``: ``increment(p) + field(p + increment(p))``.

    Args:
        field: Displacement applied so far (H, W, 2).
        increment: Displacement measured on the image resampled by ``field`` (H, W, 2).
    """
    h, w = field.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    moved = cv2.remap(field, xs + increment[..., 0], ys + increment[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    return increment + moved


def resample(nir: np.ndarray, field: np.ndarray) -> np.ndarray:
    """The uint8 NIR sampled at ``p + field(p)`` (bicubic, rounded; mirrored at the border).

    Args:
        nir: uint8 NIR (H, W).
        field: Displacement (H, W, 2) as (dx, dy).
    """
    out = _sample(nir.astype(np.float32), field.astype(np.float32), cv2.INTER_CUBIC)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def register_nir(vis: np.ndarray, nir: np.ndarray, tiles: Sequence[int] = (128, 64),
                 smooth: float = 16.0) -> Tuple[np.ndarray, np.ndarray]:
    """Bring the NIR onto the VIS with a dense, smooth displacement field (see the module docstring).

    Args:
        vis: uint8 VIS (H, W, 3), BGR; not changed.
        nir: uint8 NIR (H, W).
        tiles: Tile sides of the coarse-to-fine levels (each shrunk for small images like the measure's).
        smooth: Gaussian sigma (pixels) of each level's field.

    Returns:
        (registered uint8 NIR (H, W), field (H, W, 2) float32: ``registered(p) = nir(p + field(p))``).
    """
    if vis.shape[:2] != nir.shape[:2]:
        raise ValueError(f'VIS {vis.shape[:2]} and NIR {nir.shape[:2]} differ in size.')
    g_vis = gradient_magnitude(cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY))
    nir_f = nir.astype(np.float32)
    field = np.zeros((*nir.shape[:2], 2), np.float32)
    for tile in tiles:
        current = _sample(nir_f, field, cv2.INTER_CUBIC) if field.any() else nir_f
        centres_y, centres_x, grid = tile_shifts(g_vis, gradient_magnitude(current), tile, max_shift=0.25)
        increment = dense_field(centres_y, centres_x, clean_shifts(grid), nir.shape[:2], smooth)
        field = compose(field, increment)
    return resample(nir, field), field


@dataclass
class PairCheck:
    """What the registration check decided for one pair.

    Attributes:
        before: :func:`measure_misalignment` of the pair as found.
        misaligned: ``before`` exceeds the limit.
        action: ``'kept'`` (within the limit, not measurable, or kept by policy), ``'skipped'`` (left out by
            the ``skip`` policy), ``'registered'`` (registered and within the limit after), ``'unregistrable'``
            (registered but still beyond the limit: left out), ``'rejected'`` (the ``error`` policy).
        after: Measure after registration, or None.
        check: Cross-check after registration (another tile grid), or None.
        max_shift: Largest displacement of the registration field (pixels), or None.
    """

    before: Dict[str, Optional[float]]
    misaligned: bool
    action: str
    after: Optional[Dict[str, Optional[float]]] = None
    check: Optional[Dict[str, Optional[float]]] = None
    max_shift: Optional[float] = None

    @property
    def used(self) -> bool:
        """The pair goes into the data set."""
        return self.action in ('kept', 'registered')

    def record(self) -> dict:
        """A JSON-ready summary (``registration`` is the measure before, as data-preparation records keep it)."""
        return {'registration': self.before, 'misaligned': self.misaligned, 'action': self.action,
                'skipped': not self.used, 'after': self.after, 'check': self.check, 'max_shift': self.max_shift}

    def describe(self) -> str:
        """One line: the measure, what was done and why."""
        before = self.before
        if before['misalignment'] is None:
            return 'misalignment not measurable (no tile with structure in both images): kept'
        text = (f"misalignment {before['misalignment']:.1f} px (shift {before['shift_x']:+.1f}, "
                f"{before['shift_y']:+.1f}, spread {before['spread']:.1f})")
        if self.after is not None:
            after = ', '.join(f"{m['misalignment']:.1f}" if m['misalignment'] is not None else 'not measurable'
                              for m in (self.after, self.check))
            text += f'; after registration {after} px (measure, cross-check), field up to {self.max_shift:.1f} px'
        return text + {'kept': ': KEPT although not registered' if self.misaligned else '',
                       'skipped': ': skipped (not registered)', 'registered': ': registered',
                       'unregistrable': ': skipped (could not be registered)',
                       'rejected': ': not registered'}[self.action]


def is_within(figures: Dict[str, Optional[float]], limit: float) -> bool:
    """Within the limit, measured on enough of the image (:data:`MIN_TILE_SHARE`) to say so."""
    return (figures['misalignment'] is not None and figures['misalignment'] <= limit
            and figures['tile_share'] >= MIN_TILE_SHARE)


def check_pair(vis: np.ndarray, nir: np.ndarray, policy: str, limit: float) -> Tuple[np.ndarray, PairCheck]:
    """Measure a pair and apply a policy of :data:`MISALIGNED_POLICIES` to it.

    Args:
        vis: uint8 VIS (H, W, 3), BGR (never changed).
        nir: uint8 NIR (H, W).
        policy: ``'error'``, ``'skip'``, ``'keep'`` or ``'register'``.
        limit: Misalignment limit in pixels.

    Returns:
        (the NIR to use: registered with ``register``, else ``nir`` itself; the decision). A pair whose
        measure is None (no structure to compare) is kept and says so.
    """
    if policy not in MISALIGNED_POLICIES:
        raise ValueError(f'policy must be one of {MISALIGNED_POLICIES}, got {policy!r}.')
    before = measure_misalignment(vis, nir)
    misaligned = before['misalignment'] is not None and before['misalignment'] > limit
    if not misaligned or policy == 'keep':
        return nir, PairCheck(before, misaligned, 'kept')
    if policy != 'register':
        return nir, PairCheck(before, True, 'skipped' if policy == 'skip' else 'rejected')
    registered, field = register_nir(vis, nir)
    check_tile = _tile_side(128, nir.shape[:2]) * 3 // 4  # tiles that the field was not estimated on
    after, check = measure_misalignment(vis, registered), measure_misalignment(vis, registered, tile=check_tile)
    ok = is_within(after, limit) and is_within(check, limit)
    return (registered if ok else nir), PairCheck(before, True, 'registered' if ok else 'unregistrable', after, check,
                                                  float(np.hypot(field[..., 0], field[..., 1]).max()))


def registration_summary(records: Sequence[dict], limit: float) -> str:
    """One line over the records of :meth:`PairCheck.record`: how many pairs were within ``limit`` as found,
    how many reach it after registration, and what happened to the others.

    Args:
        records: One record per pair.
        limit: The limit they were checked against (pixels).
    """
    actions = [r['action'] for r in records]
    unmeasured = sum(r['registration']['misalignment'] is None for r in records)
    within = sum(not r['misaligned'] for r in records) - unmeasured
    parts = [f'{len(records)} pair(s) measured: {within} within {limit:g} px as found']
    for action, text in (('registered', 'registered (now within {limit:g} px)'),
                         ('unregistrable', 'could not be registered (left out)'),
                         ('skipped', 'misregistered and left out'), ('rejected', 'misregistered (refused)')):
        if actions.count(action):
            parts.append(f'{actions.count(action)} ' + text.format(limit=limit))
    kept = sum(r['misaligned'] and r['action'] == 'kept' for r in records)
    if kept:
        parts.append(f'{kept} misregistered and kept as they are')
    if unmeasured:
        parts.append(f'{unmeasured} not measurable (kept)')
    reach = within + actions.count('registered')
    return ', '.join(parts) + f'; {reach} of {len(records)} are within {limit:g} px in the data set.'
