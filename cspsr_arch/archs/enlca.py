"""The Efficient Non-Local Contrastive Attention (ENLCA) of ENLCN, in its parts.

B. Xia, Y. Hang, Y. Tian, W. Yang, Q. Liao, J. Zhou, "Efficient Non-Local Contrastive Attention for Image
Super-Resolution", AAAI 2022 (arXiv:2201.03794); official code: github.com/Zj-BinXia/ENLCA.

Non-local attention over all ``n = h*w`` positions of a feature map, ``y_i = sum_j exp(q_i . k_j) v_j /
sum_j exp(q_i . k_j)``, costs ``O(n^2)``. ENLCA has two parts:

* Efficient Non-Local Attention (ENLA): the kernel method. ``exp(q . k) = E_w[phi_w(q) phi_w(k)]`` with the
  positive random features ``phi_w(x) = exp(w . x - |x|^2 / 2)``, ``w ~ N(0, I)`` (Performer's FAVOR+), so
  with ``m`` features ``phi(x) = m^-1/2 [phi_w1(x), ..., phi_wm(x)]`` the attention becomes
  ``phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1)``: linear in ``n`` (:func:`positive_features`,
  :func:`linear_attention`).
* Sparse Aggregation: the query and key embeddings are L2-normalised over channels and multiplied by an
  amplification factor ``k``, so the kernel is ``exp(k^2 cos(q, k))``: a larger ``k`` gives the most similar
  positions exponentially more weight and the noisy, unrelated ones less. The estimate's variance grows
  exponentially with ``k`` (one feature's product ``phi_w(q) phi_w(k)`` has the variance
  ``exp(2 q.k) (exp(|q + k|^2) - 1)``: ``exp(24)`` times its squared mean for ``q = k`` at ``k = sqrt(6)``, so
  with 128 features the estimate is rough), so a contrastive loss (:func:`contrastive_loss`, training only)
  pushes the relevant scores of each query above the irrelevant ones.

Choices where the paper is silent, taken from the official code (read for the facts, not copied):

* ``k = sqrt(6)`` (so ``k^2 q.k`` lies in [-6, 6]); ``m = 128`` random features; embeddings of
  ``channels / 4`` by 1x1 convolutions, the value (assembly) embedding a 1x1 convolution keeping the channels;
  no activations; the module is residual, ``x + res_scale * attention``.
* The random features are orthogonal Gaussian ones (blocks of ``d`` orthonormal rows, each row rescaled to the
  norm of a Gaussian vector, so each row is still ``N(0, I)`` and the estimate stays unbiased, with less
  variance than i.i.d. rows) and ``phi`` adds ``1e-4`` to every feature (a floor that keeps the denominator
  away from zero; it biases the estimate by ``~1e-4`` relative).
* The features are drawn once, when the module is built, from torch's global generator (like the weights), and
  kept in a persistent buffer: the same in training and evaluation (evaluation is deterministic) and saved in
  the checkpoint, so a loaded network uses the features it was trained with. They are never redrawn (the
  official code has a redraw helper that its network never calls).
* Contrastive loss: the exact scores ``exp(k^2 q.k)`` of each query sorted in decreasing order; the positives
  are the top 5, the negatives the ranks from 50 on; ``L_cl = mean relu(margin - log(mean pos / mean neg))``
  with margin 1; weight 1e-3 in the total loss (after the first 100 of 1000 epochs in the official trainer).
  It is quadratic in ``n`` (training patches only) and is computed only when asked for
  (``contrastive=True``); see :class:`~cspsr_arch.archs.enlcn_arch.ENLCN` for how a model reads it.

Any input size works: the attention runs over all positions, no padding, chunking or hashing. The kernel and the
aggregation run in float32 under autocast (:func:`~cspsr_arch.archs.precision.full_precision`): the sums of
``exp`` over a whole image would overflow float16.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cspsr_arch.archs.precision import full_precision

FEATURE_FLOOR = 1e-4  # added to every positive random feature (the official code's value)
NORM_EPS = 5e-5  # eps of the L2 normalisation of the embeddings (the official code's value)


def orthogonal_gaussian_features(num_features: int, dim: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """Random projection (num_features, dim) whose rows are each ``N(0, I)`` and orthogonal within blocks of ``dim``.

    Args:
        num_features: Number of random features ``m``.
        dim: Dimension ``d`` of the queries and keys.
        generator: Random generator (None: torch's global one).
    """
    gauss = torch.randn(-(-num_features // dim), dim, dim, generator=generator)
    q, r = torch.linalg.qr(gauss)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar-distributed orthogonal blocks
    rows = q.transpose(-2, -1).reshape(-1, dim)[:num_features]
    return rows * torch.randn(num_features, dim, generator=generator).norm(dim=1, keepdim=True)


def positive_features(x: Tensor, projection: Tensor, floor: float = FEATURE_FLOOR) -> Tensor:
    """Positive random features ``m^-1/2 (exp(w_r . x - |x|^2 / 2) + floor)`` of ``x`` (..., n, d): (..., n, m).

    ``positive_features(q) . positive_features(k)`` estimates ``exp(q . k)`` (unbiased up to the floor).

    Args:
        x: Queries or keys.
        projection: The random features ``w`` as rows (m, d).
        floor: Added to every feature.
    """
    proj = torch.matmul(x, projection.t().to(x.dtype))
    return (torch.exp(proj - 0.5 * x.pow(2).sum(dim=-1, keepdim=True)) + floor) / math.sqrt(projection.size(0))


def linear_attention(q_feat: Tensor, k_feat: Tensor, value: Tensor) -> Tensor:
    """``phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1)``: the kernel attention of (..., n, m) features, values (..., n, c).

    Each output row is a convex combination of the value rows (positive weights summing to one).
    """
    context = torch.matmul(k_feat.transpose(-2, -1), value)  # (..., m, c)
    norm = torch.matmul(q_feat, k_feat.sum(dim=-2).unsqueeze(-1))  # (..., n, 1)
    return torch.matmul(q_feat, context) / norm


def contrastive_terms(scores: Tensor, num_pos: int = 5, neg_from: int = 50) -> Tuple[Tensor, Tensor]:
    """Mean of the ``num_pos`` largest scores and of those ranked ``neg_from`` and below, over the last dimension.

    Args:
        scores: Positive scores (..., n) of each query against all keys.
        num_pos: Number of relevant (positive) keys per query.
        neg_from: Rank (0-based, decreasing order) from which the keys are irrelevant (negative).
    """
    if not 0 < num_pos <= neg_from < scores.size(-1):
        raise ValueError(f'contrastive_terms needs 0 < num_pos ({num_pos}) <= neg_from ({neg_from}) < the number of '
                         f'keys ({scores.size(-1)}).')
    ranked = torch.sort(scores, dim=-1, descending=True)[0]
    return ranked[..., :num_pos].mean(dim=-1), ranked[..., neg_from:].mean(dim=-1)


def contrastive_loss(query: Tensor, key: Tensor, num_pos: int = 5, neg_from: int = 50, margin: float = 1.0) -> Tensor:
    """ENLCN's contrastive loss ``mean relu(margin - log(pos / neg))`` of (n, c, h, w) amplified embeddings.

    The scores are the exact ``exp(q . k)`` (quadratic in ``h*w``); a map of ``neg_from`` positions or fewer has
    no negatives and gives zero.
    """
    n, c, h, w = query.shape
    if h * w <= neg_from:
        return query.new_zeros(())
    scores = torch.exp(torch.matmul(query.flatten(2).transpose(1, 2), key.flatten(2)))  # (n, hw, hw)
    pos, neg = contrastive_terms(scores, num_pos, neg_from)
    return F.relu(margin - torch.log(pos / (neg + 1e-6))).mean()


class ENLCA(nn.Module):
    """Efficient Non-Local Contrastive Attention: a residual global attention of linear cost (see the module docstring).

    Args:
        num_feat: Channels of the feature map.
        reduction: The query/key embeddings have ``num_feat // reduction`` channels (4 in the paper's code).
        num_features: Random features ``m`` of the kernel estimate (128 in the paper's code: more lowers the
            variance, linearly more cost).
        amplification: Factor ``k`` of the normalised embeddings (Sparse Aggregation; ``sqrt(6)`` in the paper's
            code: larger focuses the attention, at an exponentially larger variance of the estimate).
        res_scale: Scale of the attention output before it is added to the input (as EDSR's residual blocks).
        contrastive: Compute the contrastive loss of each training forward into ``last_contrastive`` (quadratic
            in the patch size; off unless a model reads it).
    """

    def __init__(self, num_feat: int, reduction: int = 4, num_features: int = 128, amplification: float = math.sqrt(6),
                 res_scale: float = 1.0, contrastive: bool = False) -> None:
        super().__init__()
        dim = num_feat // reduction
        if dim < 1 or num_features < 1:
            raise ValueError(f'ENLCA needs num_feat // reduction >= 1 and num_features >= 1, got num_feat {num_feat}, '
                             f'reduction {reduction}, num_features {num_features}.')
        self.conv_match1 = nn.Conv2d(num_feat, dim, 1)
        self.conv_match2 = nn.Conv2d(num_feat, dim, 1)
        self.conv_assembly = nn.Conv2d(num_feat, num_feat, 1)
        self.amplification, self.res_scale, self.contrastive = amplification, res_scale, contrastive
        self.register_buffer('projection', orthogonal_gaussian_features(num_features, dim))
        self.last_contrastive: Optional[Tensor] = None

    def embed(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Amplified unit queries and keys (n, d, h, w) and values (n, c, h, w) of the feature map ``x``."""
        query = F.normalize(self.conv_match1(x), dim=1, eps=NORM_EPS) * self.amplification
        key = F.normalize(self.conv_match2(x), dim=1, eps=NORM_EPS) * self.amplification
        return query, key, self.conv_assembly(x)

    @full_precision
    def attend(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        """The kernel attention of (n, d, h, w) queries and keys over (n, c, h, w) values: (n, c, h, w)."""
        n, c, h, w = value.shape
        q_feat = positive_features(query.flatten(2).transpose(1, 2), self.projection)
        k_feat = positive_features(key.flatten(2).transpose(1, 2), self.projection)
        out = linear_attention(q_feat, k_feat, value.flatten(2).transpose(1, 2))
        return out.transpose(1, 2).reshape(n, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        query, key, value = self.embed(x)
        if self.contrastive and self.training:
            self.last_contrastive = contrastive_loss(query.float(), key.float())
        return x + self.res_scale * self.attend(query, key, value).to(x.dtype)
