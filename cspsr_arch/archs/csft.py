"""CSFT unit (cross-spectral feature transfer), Eq. 2 of the paper: the second step of a DMF module."""
from typing import Tuple

import torch
from torch import Tensor, nn


class CSFT(nn.Module):
    """Transfers NIR features into the VIS branch with spatial and channel weights.

    ``F'_vis = F'_nir * w_s1 * w_c2 + F_vis * w_s1 * w_s2 * w_c1`` where

    * ``w_s1 = sigmoid(conv3x3(F_vis))`` (1 channel, from the raw VIS features),
    * ``F_vis``, ``F'_nir`` are batch-normalised (``norm=True``),
    * ``w_c = sigmoid(conv1x1(GAP(concat)))`` (2C channels) split into ``w_c1``, ``w_c2``,
    * ``w_s2 = sigmoid(conv3x3(concat))`` (1 channel).

    The paper does not name the activations of ``w_s1``/``w_s2``; a sigmoid makes them gates in
    (0, 1) like ``w_c``, which keeps the product of three gates bounded.

    Args:
        num_feat (int): Channels C. Default: 64.
        norm (bool): Batch-normalise both inputs before mixing. Default: True.
    """

    def __init__(self, num_feat: int = 64, norm: bool = True) -> None:
        super().__init__()
        self.spatial_vis = nn.Conv2d(num_feat, 1, 3, 1, 1)
        self.spatial_cat = nn.Conv2d(2 * num_feat, 1, 3, 1, 1)
        self.channel = nn.Conv2d(2 * num_feat, 2 * num_feat, 1)
        self.norm_vis = nn.BatchNorm2d(num_feat) if norm else nn.Identity()
        self.norm_nir = nn.BatchNorm2d(num_feat) if norm else nn.Identity()

    def weights(self, feat_vis: Tensor, feat_nir: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Return ``(w_s1, w_s2, w_c1, w_c2, normed_vis, normed_nir)``; exposed for tests."""
        w_s1 = torch.sigmoid(self.spatial_vis(feat_vis))
        vis, nir = self.norm_vis(feat_vis), self.norm_nir(feat_nir)
        cat = torch.cat([vis, nir], dim=1)
        w_c = torch.sigmoid(self.channel(cat.mean(dim=(2, 3), keepdim=True)))
        w_c1, w_c2 = w_c.chunk(2, dim=1)
        w_s2 = torch.sigmoid(self.spatial_cat(cat))
        return w_s1, w_s2, w_c1, w_c2, vis, nir

    def forward(self, feat_vis: Tensor, feat_nir: Tensor) -> Tensor:
        w_s1, w_s2, w_c1, w_c2, vis, nir = self.weights(feat_vis, feat_nir)
        return nir * w_s1 * w_c2 + vis * w_s1 * w_s2 * w_c1
