"""The learned alignment of CMSR's guide ("internal transformer"): affine, CPAB and TPS warps, composed.

The official CMSR code (github.com/camillarhodes/CMSR, ``ZSSR.py``, with its fork of the ``ddtn`` library of
Detlefsen et al.) deforms the guide by three spatial transformers in a row, ``tps(cpab(affine(guide)))``, each
initialised to the identity: an affine map (6 parameters), a CPAB map (the integral of a continuous
piecewise-affine velocity field on ``4 x 4`` cells of 4 triangles each, ``cpab_tessalation_ncx/ncy = 4``) and
a thin-plate spline whose control points form a ``16 x 16`` grid (``tps_size = [16, 16]`` in the fork). Each
transformer samples its input at the transformed position of every output pixel, so the guide is sampled at
``A(C(S(x)))`` (``S`` the TPS, ``C`` the CPAB map, ``A`` the affine map). Here the three maps are composed into
one sampling grid and the guide is resampled once (bilinear, the border pixel clamped outside, as ddtn's
sampler clamps), which spares two interpolations' blur.

The composed map is smooth (the CPAB flow continuous with kinks along the tessellation's edges), so it is
evaluated on at most ``samples x samples`` points (:func:`coarse_size`) and bilinearly interpolated to the
output size, where the TPS's 256 radial functions and the CPAB integration at every pixel of a 480x580 output
cost seconds on a CPU core. At 129 samples (a point every ~4.5 pixels of a 580-pixel-wide output) the grid
errs by at most 0.22 px (mean 0.01 px) for TPS offsets of +-3 px drawn independently per control point,
rougher than an alignment, and by 0.12 px for a CPAB flow of that size (measured against every pixel;
``tests/test_archs/test_cmsr.py`` bounds it). Outputs up to that size are evaluated at every pixel.

Coordinates are normalised to ``[-1, 1]`` with -1 and 1 the centres of the end pixels (ddtn's grid,
``grid_sample(..., align_corners=True)``), so the same parameters mean the same deformation at any size.

Where this differs from ddtn (a reimplementation, not a port): CPAB is integrated numerically (``steps``
explicit Euler steps; ddtn integrates the piecewise-affine ODE in closed form); the velocity field is given by
its values at the tessellation's vertices, corners and cell centres (a continuous piecewise-affine field on
this triangulation is exactly one such set of values; ddtn parametrises the fields by an orthonormal basis of
those that also extend continuously outside the square, a subspace), and outside ``[-1, 1]^2`` the velocity
is that of the nearest boundary point (ddtn extends the boundary triangles' affine fields).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def identity_grid(height: int, width: int, like: Tensor) -> Tensor:
    """(1, h, w, 2) normalised (x, y) of every pixel centre, -1 and 1 the end pixels (``align_corners=True``)."""
    ys = torch.linspace(-1.0, 1.0, height, device=like.device, dtype=like.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=like.device, dtype=like.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([grid_x, grid_y], dim=-1).unsqueeze(0)


def coarse_size(size: Tuple[int, int], samples: int) -> Tuple[int, int]:
    """Points per axis at which the warp is evaluated for an output of ``size`` (h, w): at most ``samples``."""
    return min(size[0], samples), min(size[1], samples)


def upsample_grid(grid: Tensor, size: Tuple[int, int]) -> Tensor:
    """A sampling grid (n, h', w', 2) on ``linspace(-1, 1)`` points bilinearly interpolated to ``size`` (h, w)."""
    if tuple(grid.shape[1:3]) == tuple(size):
        return grid
    return F.interpolate(grid.permute(0, 3, 1, 2), size=size, mode='bilinear', align_corners=True).permute(0, 2, 3, 1)


def apply_affine(points: Tensor, theta: Tensor) -> Tensor:
    """``theta @ [x, y, 1]`` for points (n, ..., 2) and theta (n, 2, 3)."""
    shape = points.shape
    flat = points.reshape(shape[0], -1, 2)
    out = flat @ theta[:, :, :2].transpose(1, 2) + theta[:, :, 2].unsqueeze(1)
    return out.reshape(shape)


def _tps_kernel(sq_dist: Tensor) -> Tensor:
    """The TPS radial basis ``U = r^2 log r^2`` of squared distances (0 at r = 0)."""
    return sq_dist * torch.log(sq_dist.clamp_min(1e-12))


def tps_system(grid_size: int) -> Tuple[Tensor, Tensor]:
    """Control points (g*g, 2) of a regular ``g x g`` grid on ``[-1, 1]^2`` and the first ``g*g`` columns of
    the inverse TPS system matrix ``[[K, P], [P^T, 0]]^-1`` (float64): ``coef = inv @ values`` gives the
    kernel weights (first g*g rows) and the affine part (last 3 rows) of the spline through ``values``."""
    axis = torch.linspace(-1.0, 1.0, grid_size, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(axis, axis, indexing='ij')
    ctrl = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)
    count = ctrl.size(0)
    system = torch.zeros(count + 3, count + 3, dtype=torch.float64)
    system[:count, :count] = _tps_kernel(torch.cdist(ctrl, ctrl).square())
    poly = torch.cat([torch.ones(count, 1, dtype=torch.float64), ctrl], dim=1)
    system[:count, count:] = poly
    system[count:, :count] = poly.t()
    return ctrl, torch.linalg.inv(system)[:, :count]


def tps_basis(points: Tensor, ctrl: Tensor) -> Tensor:
    """The radial functions ``U(|p - c_k|)`` (n, P, g*g) of points (n, P, 2) about the control points (g*g, 2).

    They depend on the positions alone, not on the spline, so positions shared by every pair (the TPS map
    comes first, on the pixel grid) need them once (:class:`~cspsr_arch.archs.guide_align.GuideAligner` keeps
    them): a (P, g*g) table, the costliest part of the warp to compute.
    """
    return _tps_kernel((points.unsqueeze(-2) - ctrl.to(points.dtype)).square().sum(-1))


def tps_displace(points: Tensor, offsets: Tensor, ctrl: Tensor, inv: Tensor,
                 basis: Optional[Tensor] = None) -> Tensor:
    """``S(p) = p + spline(p)``: the thin-plate spline that moves control point ``k`` by ``offsets[:, k]``.

    Args:
        points: (n, P, 2) normalised positions, or (1, P, 2) shared by the n splines.
        offsets: (n, g*g, 2) control-point displacements (zeros: the identity, exactly).
        ctrl: (g*g, 2) control points; inv: their (g*g + 3, g*g) inverse system (:func:`tps_system`).
        basis: :func:`tps_basis` of ``points`` when already computed (None: computed here).
    """
    coef = inv.to(offsets.dtype) @ offsets  # (n, g*g + 3, 2)
    weights, affine = coef[:, :-3], coef[:, -3:]
    kernel = tps_basis(points, ctrl) if basis is None else basis  # (n or 1, P, g*g)
    if kernel.size(0) == 1:  # one matrix product for the n splines (a broadcast batch product is ~25x slower)
        n, count = weights.size(0), weights.size(1)
        bent = (kernel[0] @ weights.transpose(0, 1).reshape(count, 2 * n)).view(-1, n, 2).transpose(0, 1)
    else:
        bent = kernel @ weights
    return points + bent + affine[:, :1] + points @ affine[:, 1:]


def cpab_velocity(points: Tensor, corners: Tensor, centres: Tensor) -> Tensor:
    """The continuous piecewise-affine velocity at ``points`` on ddtn's tessellation of ``[-1, 1]^2``.

    ``c x c`` square cells, each cut by its diagonals into 4 triangles (top, right, bottom, left) that meet at
    the cell centre; the field is affine on every triangle and continuous, i.e. the linear interpolation of
    its values at the triangle's 3 vertices.

    Args:
        points: (n, P, 2) normalised positions (clamped to the square: the boundary velocity outside).
        corners: (n, c + 1, c + 1, 2) velocities at the cell corners (row y, column x).
        centres: (n, c, c, 2) velocities at the cell centres.
    """
    cells = centres.size(1)
    pos = (points.clamp(-1.0, 1.0) + 1.0) * (cells / 2.0)
    col = pos[..., 0].floor().clamp(0, cells - 1)
    row = pos[..., 1].floor().clamp(0, cells - 1)
    s, t = pos[..., 0] - col, pos[..., 1] - row  # in [0, 1] within the cell
    col, row = col.long(), row.long()

    def take(table: Tensor, index: Tensor) -> Tensor:  # table (n, V, 2), index (n, P) -> (n, P, 2)
        return torch.gather(table, 1, index.unsqueeze(-1).expand(-1, -1, 2))

    flat = corners.reshape(corners.size(0), -1, 2)
    stride = cells + 1
    ul, ur = take(flat, row * stride + col), take(flat, row * stride + col + 1)
    ll, lr = take(flat, (row + 1) * stride + col), take(flat, (row + 1) * stride + col + 1)
    centre = take(centres.reshape(centres.size(0), -1, 2), row * cells + col)
    # Each triangle: d = distance to its outer edge (0 there, 1/2 at the centre), a = position along the edge
    # from vertex A to vertex B; weights centre 2d, A 1 - a - d, B a - d (all >= 0 inside the triangle).
    # Triangles in the order top, right, bottom, left; the point's own is the one of smallest d (ties lie on a
    # shared edge: the same value), its d, a, A and B picked before the one evaluation.
    dist = torch.stack([t, 1 - s, 1 - t, s], dim=-1)  # (n, P, 4)
    nearest = dist.argmin(dim=-1, keepdim=True)  # (n, P, 1)
    d = dist.gather(-1, nearest)
    a = torch.stack([s, t, s, t], dim=-1).gather(-1, nearest)
    pick = nearest.unsqueeze(-1).expand(-1, -1, 1, 2)
    vert_a = torch.stack([ul, ur, ll, ul], dim=-2).gather(-2, pick).squeeze(-2)
    vert_b = torch.stack([ur, lr, lr, ll], dim=-2).gather(-2, pick).squeeze(-2)
    return 2 * d * centre + (1 - a - d) * vert_a + (a - d) * vert_b


def cpab_flow(points: Tensor, corners: Tensor, centres: Tensor, steps: int) -> Tensor:
    """``C(p)``: ``p`` moved along the CPAB velocity field for unit time (``steps`` explicit Euler steps)."""
    for _ in range(steps):
        points = points + cpab_velocity(points, corners, centres) / steps
    return points


def sample_guide(guide: Tensor, grid: Tensor) -> Tensor:
    """``guide`` sampled bilinearly at the normalised (x, y) of ``grid`` (n, h, w, 2), the border clamped."""
    return F.grid_sample(guide, grid.to(guide.dtype), mode='bilinear', padding_mode='border', align_corners=True)
