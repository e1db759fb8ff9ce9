"""CMSR's learned alignment of a guide image onto the target, its parameters predicted per pair.

G. Shacht, D. Danon, S. Fogel, D. Cohen-Or, "Single Pair Cross-Modality Super Resolution", CVPR 2021: its
"internal transformer" (affine, CPAB and thin-plate-spline maps; the maps themselves are
:mod:`cspsr_arch.archs.cmsr_warp`). CMSR (:mod:`cspsr_arch.archs.cmsr_arch`) deforms its guide with it, and
CSPSR with ``nir_align`` refines its cross-view-matched NIR with it (:class:`~cspsr_arch.archs.cspsr_arch.CSPSR`).
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cspsr_arch.archs.cmsr_warp import (apply_affine, coarse_size, cpab_flow, identity_grid, sample_guide,
                                        tps_basis, tps_displace, tps_system, upsample_grid)


class GuideAligner(nn.Module):
    """CMSR's internal transformer, its parameters predicted per pair: ``guide(A(C(S(x))))``.

    A localisation network (``loc_layers`` stride-2 3x3 convolutions with ReLU on the upscaled VIS image and
    the guide, both at the output size) gives the affine map ``A`` (global average, a linear layer), the
    TPS control-point offsets of ``S`` (features average-pooled to the ``tps_grid x tps_grid`` control grid,
    a 3x3 convolution: each control point moved by the features around it) and the vertex velocities of the
    CPAB map ``C`` (pooled to the ``cpab_cells + 1`` corners and the ``cpab_cells`` centres per axis, a 3x3
    convolution). The three heads start at zero, so the start is the identity; the warps themselves are
    :mod:`cspsr_arch.archs.cmsr_warp`.

    Args:
        in_ch: Channels of the localisation input (VIS + guide).
        loc_feat: Channels of the localisation network (the paper has none: small, as CMSR is).
        loc_layers: Its stride-2 convolutions (4: a 16x reduction, so the pooled features see ~30 output
            pixels around them, the scale of a weak misalignment).
        tps_grid: TPS control points per axis (16 in CMSR's ddtn fork; 0: no TPS).
        cpab_cells: CPAB cells per axis (4 in CMSR's configurations; 0: no CPAB).
        cpab_steps: Euler steps of the CPAB integration.
        warp_samples: Points per axis at which the composed map is evaluated, then bilinearly interpolated
            (:mod:`cspsr_arch.archs.cmsr_warp`).
        window: Side (output pixels) of the windows whose maps are predicted one at a time, 0 for one map of the
            whole image. The maps are in coordinates normalised to what the network sees, so a map learnt on
            training patches, applied to a whole image, moves the guide by as many times more pixels as the
            image is larger than a patch (docs/design_notes.md measures it). Set to the training patch size,
            each window of a larger image gets the map its patch would have got in training; the grids are
            stitched (the last window of a row or column aligned to the image's end, overlapping its
            neighbour) and the guide sampled once from the whole image. Inputs no larger than the window are
            one window: training is the same with or without it.
    """

    def __init__(self, in_ch: int, loc_feat: int = 16, loc_layers: int = 4, tps_grid: int = 16, cpab_cells: int = 4,
                 cpab_steps: int = 8, warp_samples: int = 129, window: int = 0) -> None:
        super().__init__()
        if min(loc_feat, loc_layers, cpab_steps) < 1 or tps_grid == 1 or min(tps_grid, cpab_cells) < 0 \
                or warp_samples < 2 or window == 1 or window < 0:
            raise ValueError(f'GuideAligner needs loc_feat, loc_layers, cpab_steps >= 1, tps_grid 0 or >= 2, '
                             f'cpab_cells >= 0, warp_samples >= 2 and window 0 or >= 2; got {loc_feat}, {loc_layers}, '
                             f'{cpab_steps}, {tps_grid}, {cpab_cells}, {warp_samples}, {window}.')
        layers = []
        for k in range(loc_layers):
            layers += [nn.Conv2d(in_ch if k == 0 else loc_feat, loc_feat, 3, 2, 1), nn.ReLU(inplace=True)]
        self.loc = nn.Sequential(*layers)
        self.tps_grid, self.cpab_cells, self.cpab_steps = tps_grid, cpab_cells, cpab_steps
        self.warp_samples, self.window = warp_samples, window
        self.affine_head = nn.Linear(loc_feat, 6)
        heads = [self.affine_head]
        if tps_grid:
            self.tps_head = nn.Conv2d(loc_feat, 2, 3, 1, 1)
            heads.append(self.tps_head)
            ctrl, inv = tps_system(tps_grid)  # fixed by the grid: buffers, not in the checkpoint
            self.register_buffer('tps_ctrl', ctrl.float(), persistent=False)
            self.register_buffer('tps_inv', inv.float(), persistent=False)
            self._basis_key: Optional[tuple] = None  # the radial functions of the last pixel grid (_pixel_basis)
            self._basis: Optional[Tensor] = None
        if cpab_cells:
            self.cpab_head = nn.Conv2d(loc_feat, 2, 3, 1, 1)
            heads.append(self.cpab_head)
        for head in heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.register_buffer('affine_identity', torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), persistent=False)

    def predict(self, vis: Tensor, guide: Tensor) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor],
                                                            Optional[Tensor]]:
        """The transformer parameters of each pair: affine (n, 2, 3); TPS offsets (n, g*g, 2) or None; CPAB
        corner (n, c+1, c+1, 2) and centre (n, c, c, 2) velocities or None (normalised units, (x, y))."""
        feat = self.loc(torch.cat([vis, guide], dim=1))
        theta = self.affine_identity + self.affine_head(feat.mean(dim=(2, 3))).view(-1, 2, 3)

        def head(conv: nn.Module, size: int) -> Tensor:
            return conv(F.adaptive_avg_pool2d(feat, size)).permute(0, 2, 3, 1)

        tps = head(self.tps_head, self.tps_grid).flatten(1, 2) if self.tps_grid else None
        corners = head(self.cpab_head, self.cpab_cells + 1) if self.cpab_cells else None
        centres = head(self.cpab_head, self.cpab_cells) if self.cpab_cells else None
        return theta, tps, corners, centres

    def grid(self, theta: Tensor, tps: Optional[Tensor], corners: Optional[Tensor], centres: Optional[Tensor],
             size: Tuple[int, int]) -> Tensor:
        """Sampling grid (n, h, w, 2) of the composed map ``A(C(S(x)))`` for an output of ``size`` (h, w),
        evaluated at :func:`~cspsr_arch.archs.cmsr_warp.coarse_size` points and bilinearly interpolated."""
        n, (height, width) = theta.size(0), coarse_size(size, self.warp_samples)
        points = identity_grid(height, width, theta).reshape(1, -1, 2)
        if tps is not None:
            points = tps_displace(points, tps, self.tps_ctrl, self.tps_inv, self._pixel_basis(points, height, width))
        points = points.expand(n, -1, -1)
        if corners is not None:
            points = cpab_flow(points, corners, centres, self.cpab_steps)
        return upsample_grid(apply_affine(points, theta).view(n, height, width, 2), size)

    def _pixel_basis(self, points: Tensor, height: int, width: int) -> Tensor:
        """:func:`~cspsr_arch.archs.cmsr_warp.tps_basis` of the ``height x width`` grid ``points`` (1, P, 2),
        kept for the last grid (training repeats one patch size): the same for every pair and step."""
        key = (height, width, points.dtype, points.device, torch.is_inference_mode_enabled())
        if self._basis_key != key:
            with torch.no_grad():
                self._basis = tps_basis(points, self.tps_ctrl)
            self._basis_key = key
        return self._basis

    def windowed_grid(self, vis: Tensor, guide: Tensor) -> Tensor:
        """The sampling grid (n, H, W, 2) of the whole guide, one map per ``window`` (see the class docstring)."""
        height, width = guide.shape[-2:]
        if not self.window or (height <= self.window and width <= self.window):
            return self.grid(*self.predict(vis, guide), (height, width))

        def starts(length: int) -> List[int]:  # the last window ends at the image's end
            return list(range(0, length - self.window, self.window)) + [max(length - self.window, 0)]

        h, w = min(self.window, height), min(self.window, width)
        grid = guide.new_empty(guide.size(0), height, width, 2)
        for y0 in starts(height):
            for x0 in starts(width):
                part = self.grid(*self.predict(vis[..., y0:y0 + h, x0:x0 + w], guide[..., y0:y0 + h, x0:x0 + w]),
                                 (h, w))
                # window-normalised -> image-normalised (-1 and 1 the end pixels' centres of each)
                x = ((part[..., 0] + 1) * (w - 1) / 2 + x0) * 2 / (width - 1) - 1
                y = ((part[..., 1] + 1) * (h - 1) / 2 + y0) * 2 / (height - 1) - 1
                grid[:, y0:y0 + h, x0:x0 + w] = torch.stack([x, y], dim=-1)
        return grid

    def forward(self, vis: Tensor, guide: Tensor) -> Tensor:
        """The guide (n, c, H, W) deformed onto ``vis`` (n, 3, H, W)."""
        return sample_guide(guide, self.windowed_grid(vis, guide))
