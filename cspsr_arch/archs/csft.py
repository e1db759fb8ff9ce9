"""CSFT unit (cross-spectral feature transfer), Eq. 2 of the paper: the second step of a DMF module."""
from typing import Tuple

import torch
from torch import Tensor, nn

from cspsr_arch.archs.dynamic_conv import conv_on_concat


CHANNEL_POOLS = ('normalised', 'raw')

NORMS = {
    'batch': nn.BatchNorm2d,
    'instance': lambda num_feat: nn.InstanceNorm2d(num_feat, affine=True),
    'none': lambda num_feat: nn.Identity(),
}


class CSFT(nn.Module):
    """Transfers NIR features into the VIS branch with spatial and channel weights.

    ``F'_vis = F'_nir * w_s1 * w_c2 + F_vis * w_s1 * w_s2 * w_c1`` where

    * ``w_s1 = sigmoid(conv3x3(F_vis))`` (1 channel, from the raw VIS features),
    * ``F_vis``, ``F'_nir`` are normalised: batch normalisation as in the paper (``norm='batch'``), or
      per-image instance normalisation (``'instance'``), or not at all (``'none'``),
    * ``w_c = sigmoid(conv1x1(GAP(concat)))`` (2C channels) split into ``w_c1``, ``w_c2``,
    * ``w_s2 = sigmoid(conv3x3(concat))`` (1 channel).

    The paper does not name the activations of ``w_s1``/``w_s2``; a sigmoid makes them gates in
    (0, 1) like ``w_c``, which keeps the product of three gates bounded. Batch normalisation needs
    batches whose statistics match the test images: with the small CPU batches of 24x24 LR patches of
    the demo its running statistics did not (measurements: docs/design_notes.md), hence the instance
    option, which is the same at training and test.

    The paper pools the normalised features for ``w_c``. A normalised map's spatial mean carries little
    of the image: with instance normalisation it is exactly the affine shift, the same for every image, and
    with batch normalisation it is near the shift for every image of a batch, so the channel gates cannot
    depend on the input. ``channel_pool='raw'`` pools the features before the normalisation instead, so
    the gates see each image's channel statistics.

    Args:
        num_feat (int): Channels C. Default: 64.
        norm (str): ``'batch'``, ``'instance'`` or ``'none'``. Default: ``'batch'``.
        channel_pool (str): Features pooled for ``w_c``: ``'normalised'`` (paper) or ``'raw'``.
            Default: ``'normalised'``.
    """

    def __init__(self, num_feat: int = 64, norm: str = 'batch', channel_pool: str = 'normalised') -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f'norm must be one of {tuple(NORMS)}, got {norm!r}.')
        if channel_pool not in CHANNEL_POOLS:
            raise ValueError(f'channel_pool must be one of {CHANNEL_POOLS}, got {channel_pool!r}.')
        self.channel_pool = channel_pool
        self.spatial_vis = nn.Conv2d(num_feat, 1, 3, 1, 1)
        self.spatial_cat = nn.Conv2d(2 * num_feat, 1, 3, 1, 1)
        self.channel = nn.Conv2d(2 * num_feat, 2 * num_feat, 1)
        self.norm_vis, self.norm_nir = NORMS[norm](num_feat), NORMS[norm](num_feat)

    def weights(self, feat_vis: Tensor, feat_nir: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Return ``(w_s1, w_s2, w_c1, w_c2, normed_vis, normed_nir)``; exposed for tests."""
        w_s1 = torch.sigmoid(self.spatial_vis(feat_vis))
        vis, nir = self.norm_vis(feat_vis), self.norm_nir(feat_nir)
        pooled = (vis, nir) if self.channel_pool == 'normalised' else (feat_vis, feat_nir)
        gap = torch.cat([x.mean(dim=(2, 3), keepdim=True) for x in pooled], dim=1)
        w_c1, w_c2 = torch.sigmoid(self.channel(gap)).chunk(2, dim=1)
        w_s2 = torch.sigmoid(conv_on_concat(self.spatial_cat, vis, nir))
        return w_s1, w_s2, w_c1, w_c2, vis, nir

    def forward(self, feat_vis: Tensor, feat_nir: Tensor) -> Tensor:
        w_s1, w_s2, w_c1, w_c2, vis, nir = self.weights(feat_vis, feat_nir)
        # = nir * w_s1 * w_c2 + vis * w_s1 * w_s2 * w_c1, in four passes over the feature map; never forms
        # the (C, h, w) product w_s2 * w_c1 (DMF uses cspsr_arch.archs.fused_dmf, which also folds the norm)
        return (nir * w_c2).addcmul_(vis * w_c1, w_s2) * w_s1
