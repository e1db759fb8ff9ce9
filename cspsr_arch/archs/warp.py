"""Horizontal (epipolar) warping of images and features by a disparity map.

Stereo convention used everywhere in cspsr (the VIS camera is the left view, the NIR camera the
right one)::

    NIR_l(y, x) = NIR_r(y, x - disp_l(y, x))      # warp_to_left
    VIS_r(y, x) = VIS_l(y, x + disp_r(y, x))      # warp_to_right

Sampling is sub-pixel and bilinear, as ``basicsr.archs.arch_util.flow_warp`` samples with a flow of
``(offset, 0)`` (``grid_sample``, pixel-centre aligned, ``align_corners=True``); samples that fall
outside the source image are zero and are flagged invalid in the returned mask. The grid is built
here rather than by ``flow_warp``, whose ``grid.requires_grad = False`` splits a ``torch.compile``
graph in four at every warp (``tests/test_archs/test_arch_units.py`` checks the two agree).
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check(img: Tensor, disp: Tensor) -> None:
    if img.dim() != 4 or disp.dim() != 4 or disp.size(1) != 1:
        raise ValueError(f'Expected img (n, c, h, w) and disp (n, 1, h, w); got {tuple(img.shape)} and '
                         f'{tuple(disp.shape)}.')
    if img.shape[-2:] != disp.shape[-2:] or img.size(0) != disp.size(0):
        raise ValueError(f'Image {tuple(img.shape)} and disparity {tuple(disp.shape)} differ in batch or size; '
                         'resize the disparity with upscale_disparity() first.')


def shift_horizontally(img: Tensor, offset: Tensor) -> Tuple[Tensor, Tensor]:
    """Sample ``img`` at ``(y, x + offset(y, x))`` bilinearly.

    Args:
        img (Tensor): Source, shape (n, c, h, w).
        offset (Tensor): Horizontal sampling offset in pixels, shape (n, 1, h, w).

    Returns:
        tuple[Tensor, Tensor]: The warped image (n, c, h, w) and a validity mask (n, 1, h, w) that is 1
        where the sampling position lies inside the source image and 0 elsewhere.
    """
    _check(img, offset)
    height, width = img.shape[-2:]
    grid_x = torch.arange(width, device=img.device, dtype=offset.dtype).view(1, 1, 1, width)
    pos = grid_x + offset
    # grid_sample's coordinates in [-1, 1] (align_corners=True: -1 and 1 are the centres of the end pixels),
    # rounded as flow_warp rounds them (2 * pos / (w - 1) - 1): integer positions then land exactly on pixels
    norm_x = (2.0 * pos.to(img.dtype) / max(width - 1, 1) - 1.0).squeeze(1)
    rows = 2.0 * torch.arange(height, device=img.device, dtype=img.dtype) / max(height - 1, 1) - 1.0
    grid = torch.stack([norm_x, rows.view(1, height, 1).expand_as(norm_x)], dim=3)
    warped = F.grid_sample(img, grid, mode='bilinear', padding_mode='zeros', align_corners=True)
    valid = ((pos >= 0) & (pos <= width - 1)).to(img.dtype)
    return warped, valid


def warp_to_left(img_right: Tensor, disp_left: Tensor) -> Tuple[Tensor, Tensor]:
    """Bring a right-view image into the left view: ``out(y, x) = img_right(y, x - disp_left(y, x))``.

    Args:
        img_right (Tensor): Right-view image or feature, (n, c, h, w).
        disp_left (Tensor): Left disparity in pixels of this resolution, (n, 1, h, w).

    Returns:
        tuple[Tensor, Tensor]: Warped image and validity mask (see :func:`shift_horizontally`).
    """
    return shift_horizontally(img_right, -disp_left)


class WarpToLeft(nn.Module):
    """:func:`warp_to_left` as a module (no parameters), so that a forward hook can see its result.

    CSPSR warps the right-view NIR into the left view with it: inspecting the warped NIR of a trained
    network, or of one tile in tiled inference, needs no change to the network's code.
    """

    def forward(self, img_right: Tensor, disp_left: Tensor) -> Tuple[Tensor, Tensor]:
        return warp_to_left(img_right, disp_left)


def warp_to_right(img_left: Tensor, disp_right: Tensor) -> Tuple[Tensor, Tensor]:
    """Bring a left-view image into the right view: ``out(y, x) = img_left(y, x + disp_right(y, x))``.

    Args:
        img_left (Tensor): Left-view image or feature, (n, c, h, w).
        disp_right (Tensor): Right disparity in pixels of this resolution, (n, 1, h, w).

    Returns:
        tuple[Tensor, Tensor]: Warped image and validity mask (see :func:`shift_horizontally`).
    """
    return shift_horizontally(img_left, disp_right)


def upscale_disparity(disp: Tensor, size: Tuple[int, int]) -> Tensor:
    """Resize a disparity map to ``size`` and rescale its values to pixels of the new width.

    Args:
        disp (Tensor): Disparity (n, 1, h, w) in pixels of width ``w``.
        size (tuple[int, int]): Target (height, width).

    Returns:
        Tensor: Disparity (n, 1, *size) in pixels of the target width.
    """
    if tuple(disp.shape[-2:]) == tuple(size):
        return disp
    ratio = size[1] / disp.size(-1)
    return F.interpolate(disp, size=size, mode='bilinear', align_corners=False) * ratio


def occlusion_mask(disp_left: Tensor, disp_right: Tensor, threshold: float = 1.0) -> Tensor:
    """Left-view pixels whose match in the right view agrees (left-right consistency check).

    A left pixel x is kept when ``|disp_left(x) - disp_right(x - disp_left(x))| <= threshold``: pixels
    occluded in the right view fail the check because the right view sees a nearer surface there.

    Args:
        disp_left (Tensor): Left disparity (n, 1, h, w).
        disp_right (Tensor): Right disparity (n, 1, h, w), same resolution.
        threshold (float): Tolerance in pixels. Default: 1.0.

    Returns:
        Tensor: Float mask (n, 1, h, w), 1 for consistent (visible in both views) pixels.
    """
    disp_right_at_left, valid = warp_to_left(disp_right, disp_left)
    consistent = ((disp_left - disp_right_at_left).abs() <= threshold).to(disp_left.dtype)
    return consistent * valid
