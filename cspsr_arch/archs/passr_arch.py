"""PASSR (PASSRnet), a stereo SR network, as a NIR-guided comparison network of cspsr (registered as ``PASSR``).

Reference: L. Wang, Y. Wang, Z. Liang, Z. Lin, J. Yang, W. An and Y. Guo, "Learning Parallax Attention for
Stereo Image Super-Resolution", CVPR 2019, pp. 12250-12259, arXiv:1903.05784. Written from the paper; layer
sizes, biases and the loss normalisation checked against the authors' public code (PASSRnet ``models.py`` and
``train.py``), which was read, not copied.

The network super-resolves the left view of a rectified pair: a feature extractor shared by both views
(3x3 convolution, then residual block, residual ASPP block, residual block, residual ASPP block, residual
block), the parallax attention module (PAM, :class:`ParallaxAttention`) that relates every pixel to the whole
row of the other view, and an upsampling part (four residual blocks, a 1x1 convolution + pixel shuffle, two
3x3 convolutions). As a comparison network of the CSPSR paper the stereo pair is the VIS/NIR pair: left view
the LR VIS (3 channels), right view the LR NIR of the other camera (1 channel at the LR size: ``nir_scale`` 1
only, the PAM compares rows of equal width). The output is the super-resolved VIS. PASSRnet has no global
(bicubic) skip: its output is the upsampling part's alone, so none is added here either.

The paper trains with ``L_SR + 0.005 * (L_photometric + L_cycle + L_smooth)`` on the attention maps: each
forward stores them in ``last_attention`` (:class:`AttentionMaps`) and :func:`passr_losses` computes the
three terms, so that a model can add them.

Where the paper is silent or the VIS/NIR pair forces a choice (each stated where it is made):

* NIR entry: a 1-channel NIR cannot enter the shared 3-channel first convolution. By default it has its own
  first convolution (``nir_entry='separate'``, +9 C weights, 0.04 % at C = 64), all else shared. Repeating
  the NIR to 3 channels (``'repeat'``, every weight shared) makes its first layer the channel sum of the VIS
  filters, i.e. ties its response to the VIS luminance, while NIR and VIS brightness of one surface differ
  (vegetation, fabrics, skin); a separate entry can learn that mapping, and the shared deep extractor still
  puts both views into one feature space, which the PAM's dot-product matching needs (why the paper shares).
* Valid masks: the paper thresholds the attention (tau = 0.1) and cleans the mask with morphological
  operations. The closing of the occluded region with a disk of radius 3 (the authors' code) is done here in
  torch (:func:`close_occlusions`); the removal of small occluded specks and small holes (connected components)
  is not, since torch has no such operator and a CPU round trip per forward would stall GPU training: isolated
  occluded specks stay occluded (a slightly more conservative mask; the closing already fills narrow valid gaps,
  part of what the hole removal does). Both masks are computed every forward (cheap); only the losses use
  V_right->left.
* Attention scores are plain dot products, without the 1/sqrt(C) of transformers (the paper has none).
* Parameter counts: published 1.42 M (x4, the paper's table) and 1.37 M (x2, as stereo-SR result tables list
  it); see :class:`PASSR` for ours and where they differ.
* Initialisation: PyTorch's default (the authors' code keeps it; BasicSR's scaled Kaiming init is not used).
"""
from typing import Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import make_layer
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.cspsr_arch import CSPSROutput
from cspsr_arch.archs.guided import GuidedSR

NIR_ENTRIES = ('separate', 'repeat')
ASPP_DILATIONS = (1, 4, 8)  # the dilation rates of one ASPP group (the paper's residual ASPP module)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights: the VIS as one channel for the photometric loss
PUBLISHED_PARAMS = {2: 1.37e6, 4: 1.42e6}  # PASSRnet's parameter count as published, per scale


class AttentionMaps(NamedTuple):
    """The parallax attention maps of one forward and the valid masks derived from them.

    Attributes:
        right_to_left (Tensor): M_right->left, (n, h, w, w): entry (y, i, j) is the weight of right pixel
            (y, j) for left pixel (y, i); each row (fixed y, i) sums to 1 (softmax over the right row).
        left_to_right (Tensor): M_left->right, (n, h, w, w): the same with the views swapped.
        valid_left (Tensor): V_left->right, (n, 1, h, w): 1 where the left pixel is seen in the right view.
        valid_right (Tensor): V_right->left, (n, 1, h, w): 1 where the right pixel is seen in the left view.
    """

    right_to_left: Tensor
    left_to_right: Tensor
    valid_left: Tensor
    valid_right: Tensor


class ResB(nn.Module):
    """PASSRnet's residual block: ``x + conv(lrelu(conv(x)))``, 3x3 convolutions without bias, LeakyReLU(0.1).

    BasicSR's ``ResidualBlockNoBN`` differs (ReLU, biases, scaled init), so it is not used.

    Args:
        num_feat (int): Channels.
    """

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False), nn.LeakyReLU(0.1, True),
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ASPPGroup(nn.Module):
    """Three parallel dilated 3x3 convolutions (rates 1, 4, 8, each with LeakyReLU(0.1)) fused by a 1x1 conv.

    Args:
        num_feat (int): Channels.
    """

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, d, d, bias=False), nn.LeakyReLU(0.1, True))
            for d in ASPP_DILATIONS)
        self.fuse = nn.Conv2d(num_feat * len(ASPP_DILATIONS), num_feat, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))


class ResASPPB(nn.Module):
    """Residual ASPP block: three ASPP groups in a cascade, ``x + g1 + g2 + g3`` with ``g_k = group_k(g_{k-1})``.

    Args:
        num_feat (int): Channels.
    """

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.groups = nn.ModuleList(ASPPGroup(num_feat) for _ in range(3))

    def forward(self, x: Tensor) -> Tensor:
        out, feat = x, x
        for group in self.groups:
            feat = group(feat)
            out = out + feat
        return out


def close_occlusions(valid: Tensor, radius: int) -> Tensor:
    """Morphological closing of the occluded region (``valid == 0``) with a disk, as the authors' code does.

    The mask is padded by ``radius`` non-occluded pixels (a canvas, as the authors pad before their closing)
    and dilated on the canvas, so an occluded region touching the image border grows into the padding and
    survives the erosion, which is read at the image pixels only (their disks stay inside the canvas). Gaps of
    valid pixels narrower than the disk inside occluded regions close; occluded pixels stay occluded.

    Args:
        valid (Tensor): Binary mask (n, 1, h, w), 1 valid.
        radius (int): Disk radius (``x**2 + y**2 <= radius**2``); 0 returns ``valid`` unchanged.

    Returns:
        Tensor: The cleaned mask, same shape and dtype.
    """
    if radius <= 0:
        return valid
    r = radius
    grid = torch.arange(-r, r + 1, device=valid.device)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= r * r).to(valid.dtype)[None, None]
    canvas = F.pad(1 - valid, (r, r, r, r))
    dilated = (F.conv2d(canvas, disk, padding=r) > 0.5).to(valid.dtype)  # on the canvas, (h + 2r, w + 2r)
    closed = F.conv2d(dilated, disk) > disk.sum() - 0.5  # erosion at the image pixels, (h, w)
    return 1 - closed.to(valid.dtype)


def valid_mask(attention: Tensor, threshold: float = 0.1, closing: int = 3) -> Tensor:
    """V: a pixel of view A is valid when the other view's attention onto it sums to more than ``threshold``.

    Args:
        attention (Tensor): M_A->B, (n, h, w, w): row (y, i) is pixel (y, i) of view B attending to row y of A.
        threshold (float): tau of the paper (0.1): an occluded pixel of A is matched by no pixel of B.
        closing (int): Radius of the closing of :func:`close_occlusions` (0: none).

    Returns:
        Tensor: (n, 1, h, w) in {0, 1}, without gradient (a threshold has none; the authors detach it too).
    """
    with torch.no_grad():
        seen = (attention.detach().sum(dim=2) > threshold).to(attention.dtype).unsqueeze(1)
        return close_occlusions(seen, closing)


class ParallaxAttention(nn.Module):
    """PAM: fuses the other view's features, found along the same row, into the left features.

    A shared residual block gives A0, B0 from the left and right features A, B; 1x1 convolutions give the
    query Q (from A0) and key S (from B0); ``M_right->left = softmax(Q S^T)`` per row, over the right row (no
    scaling: the paper has none). The right features B through a 1x1 convolution are gathered by it, and a
    1x1 convolution fuses them with A and the valid mask V_left->right. M_left->right (query and key swapped,
    same convolutions) gives that mask and the losses.

    Args:
        num_feat (int): Channels C.
        threshold (float): tau of :func:`valid_mask`. Default: 0.1.
        closing (int): Closing radius of :func:`valid_mask`. Default: 3.
    """

    def __init__(self, num_feat: int, threshold: float = 0.1, closing: int = 3) -> None:
        super().__init__()
        self.threshold, self.closing = threshold, closing
        self.transition = ResB(num_feat)
        self.query = nn.Conv2d(num_feat, num_feat, 1)
        self.key = nn.Conv2d(num_feat, num_feat, 1)
        self.value = nn.Conv2d(num_feat, num_feat, 1)
        self.fusion = nn.Conv2d(2 * num_feat + 1, num_feat, 1)

    def attention(self, a0: Tensor, b0: Tensor) -> Tensor:
        """M_B->A, (n, h, w, w): row (y, i) is the softmax over pixels (y, j) of B of Q_A(y, i) . S_B(y, j)."""
        query = self.query(a0).permute(0, 2, 3, 1)  # n, h, w, C
        key = self.key(b0).permute(0, 2, 1, 3)  # n, h, C, w
        return torch.softmax(query @ key, dim=-1)

    def forward(self, left: Tensor, right: Tensor) -> Tuple[Tensor, AttentionMaps]:
        a0, b0 = self.transition(torch.cat([left, right])).chunk(2)  # one call: the block is shared
        right_to_left, left_to_right = self.attention(a0, b0), self.attention(b0, a0)
        valid_left = valid_mask(left_to_right, self.threshold, self.closing)
        valid_right = valid_mask(right_to_left, self.threshold, self.closing)
        gathered = (right_to_left @ self.value(right).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        out = self.fusion(torch.cat([gathered, left, valid_left], dim=1))
        return out, AttentionMaps(right_to_left, left_to_right, valid_left, valid_right)


@ARCH_REGISTRY.register()
class PASSR(GuidedSR):
    """PASSRnet on the VIS (left) / NIR (right) pair; ``PASSR()`` is the paper's x4 network (see the module).

    Parameters at the defaults: 1,417,553 (x4) and 1,368,401 (x2), against the published 1.42 M and 1.37 M;
    the only addition is the NIR's first convolution (9 C = 576; ``nir_entry='repeat'``: 1,416,977, the count
    of the authors' code, 0.2 % under the published figure, which is rounded). Every convolution outside the
    PAM has no bias, as in the authors' code; the upsampling part ends with a 3x3 C->3 and a 3x3 3->3
    convolution, as there (81 weights; the paper's text names one final convolution). ``PASSR(num_feat=24)``
    (x4: 200,433 parameters) is a small configuration for CPU benchmarks.

    Args:
        num_in_ch (int): VIS channels (also the output's). Default: 3.
        num_nir_ch (int): NIR channels. Default: 1.
        num_feat (int): Channels C (64 in the paper). Default: 64.
        upscale (int): Scale factor, 2, 3 or 4 (the paper: 2 and 4). Default: 4.
        nir_scale (int): Must be 1: the PAM matches rows of equal width, so the NIR enters at the LR size.
        num_up_blocks (int): Residual blocks of the upsampling part (4 in the paper). Default: 4.
        nir_entry (str): ``'separate'`` (own first convolution for the NIR) or ``'repeat'`` (NIR repeated to
            ``num_in_ch`` channels into the shared one); see the module docstring. Default: ``'separate'``.
        mask_threshold (float): tau of the valid masks (0.1 in the paper). Default: 0.1.
        mask_closing (int): Disk radius of the masks' morphological closing (3 in the authors' code; 0 off).
        keep_attention (bool): Store the maps in ``last_attention`` after each forward (for the losses).
            False for inference of large images, where the two (n, h, w, w) maps dominate memory. Default: True.
    """

    row_context = True  # every left pixel attends to the whole row of the NIR: tiling only approximates it

    def __init__(self,
                 num_in_ch: int = 3,
                 num_nir_ch: int = 1,
                 num_feat: int = 64,
                 upscale: int = 4,
                 nir_scale: int = 1,
                 num_up_blocks: int = 4,
                 nir_entry: str = 'separate',
                 mask_threshold: float = 0.1,
                 mask_closing: int = 3,
                 keep_attention: bool = True) -> None:
        if isinstance(nir_scale, bool) or nir_scale != 1:
            raise ValueError(f'PASSR takes the NIR at the LR size only (nir_scale=1): its parallax attention '
                             f'matches rows of equal width in the two views; got nir_scale={nir_scale!r}.')
        if upscale not in (2, 3, 4):
            raise ValueError(f'upscale must be 2, 3 or 4, got {upscale!r}.')
        if nir_entry not in NIR_ENTRIES:
            raise ValueError(f'nir_entry must be one of {NIR_ENTRIES}, got {nir_entry!r}.')
        super().__init__(upscale, nir_scale, num_in_ch, num_nir_ch)
        if nir_entry == 'repeat' and num_in_ch % num_nir_ch:
            raise ValueError(f"nir_entry='repeat' needs num_in_ch ({num_in_ch}) to be a multiple of num_nir_ch "
                             f'({num_nir_ch}).')
        self.nir_entry, self.keep_attention = nir_entry, keep_attention
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=False)
        if nir_entry == 'separate':
            self.conv_first_nir = nn.Conv2d(num_nir_ch, num_feat, 3, 1, 1, bias=False)
        self.extractor = nn.Sequential(nn.LeakyReLU(0.1, True), ResB(num_feat), ResASPPB(num_feat), ResB(num_feat),
                                       ResASPPB(num_feat), ResB(num_feat))
        self.pam = ParallaxAttention(num_feat, mask_threshold, mask_closing)
        self.upsample = nn.Sequential(
            make_layer(ResB, num_up_blocks, num_feat=num_feat),
            nn.Conv2d(num_feat, num_feat * upscale * upscale, 1, bias=False), nn.PixelShuffle(upscale),
            nn.Conv2d(num_feat, num_in_ch, 3, 1, 1, bias=False), nn.Conv2d(num_in_ch, num_in_ch, 3, 1, 1, bias=False))
        self.last_attention: Optional[AttentionMaps] = None

    def forward(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None,
                disp_r: Optional[Tensor] = None) -> CSPSROutput:
        """Super-resolve the left VIS with the right NIR.

        Args:
            lq (Tensor): LR VIS, left view, (n, 3, h, w) in [0, 1].
            lq_nir (Tensor): LR NIR, right view, (n, 1, h, w) in [0, 1].
            disp (Tensor | None): Ignored: the PAM finds the correspondence itself.
            disp_r (Tensor | None): Ignored.

        Returns:
            CSPSROutput: ``(sr, None, zeros (n, 1, h, w), None)``.
        """
        self.check_inputs(lq, lq_nir)
        self.last_attention = None  # free the previous maps before the new ones are computed
        if self.nir_entry == 'separate':
            entry_nir = self.conv_first_nir(lq_nir)
        else:
            entry_nir = self.conv_first(lq_nir.repeat(1, self.num_in_ch // self.num_nir_ch, 1, 1))
        left, right = self.extractor(torch.cat([self.conv_first(lq), entry_nir])).chunk(2)  # one shared pass
        fused, maps = self.pam(left, right)
        if self.keep_attention:
            self.last_attention = maps
        return self.output(self.upsample(fused), lq)


def _as_common_channels(left: Tensor, right: Tensor) -> Tuple[Tensor, Tensor]:
    """The two views with one channel count: a 3-channel view against a 1-channel one becomes its luma."""
    if left.size(1) == right.size(1):
        return left, right
    luma = lambda x: torch.einsum('nchw,c->nhw', x, x.new_tensor(LUMA)).unsqueeze(1)  # noqa: E731
    if (left.size(1), right.size(1)) == (3, 1):
        return luma(left), right
    if (left.size(1), right.size(1)) == (1, 3):
        return left, luma(right)
    raise ValueError(f'passr_losses compares the two views: they need the same channels, or 3 and 1 (the VIS '
                     f'then as its luma), got {left.size(1)} and {right.size(1)}.')


def _mean(x: Tensor) -> Tensor:
    """Mean of ``x``, 0 when empty (a one-row or one-column map has no neighbours to compare)."""
    return x.mean() if x.numel() else x.new_zeros(())


def passr_losses(maps: AttentionMaps, lq_left: Tensor, lq_right: Tensor, weight: float = 0.005) -> Dict[str, Tensor]:
    """PASSRnet's photometric, cycle and smoothness losses on the parallax attention maps (the paper).

    * photometric: ``|I_L - M_right->left (x) I_R|`` over the pixels of V_left->right plus the same with the
      views swapped over V_right->left, on the LR images (where the attention lives);
    * cycle: ``|M_left->right->left - Id|`` with ``M_left->right->left = M_right->left (x) M_left->right``,
      over the rows of the valid left pixels (the paper's p in V; the authors' code masks the columns
      instead), plus the same for the right view;
    * smoothness: ``|M(y, i, j) - M(y+1, i, j)| + |M(y, i, j) - M(y, i+1, j+1)|`` over both maps.

    Each term is a mean over all its elements, the masked ones counting as zeros (the authors' ``L1Loss`` of
    masked tensors), so ``weight`` keeps the paper's meaning (lambda = 0.005 against an MSE L_SR).

    For the VIS/NIR pair the VIS enters the photometric loss as its BT.601 luma (the single channel closest
    to a NIR image). That NIR and VIS brightness differ is a limit of the paper's photometric loss across
    spectra, kept here for a faithful comparison; a caller may pass other 1-channel views instead.

    Args:
        maps (AttentionMaps): From ``PASSR.last_attention`` (or :class:`ParallaxAttention`).
        lq_left (Tensor): LR left view (n, c, h, w): the VIS (3 channels) or any view.
        lq_right (Tensor): LR right view (n, c', h, w): the NIR.
        weight (float): lambda of the paper, applied to ``'total'``. Default: 0.005.

    Returns:
        dict[str, Tensor]: ``'photometric'``, ``'cycle'``, ``'smooth'`` (unweighted scalars) and ``'total'``
        (``weight`` times their sum).
    """
    m_rl, m_lr, v_l, v_r = maps
    n, h, w = m_rl.shape[:3]
    for name, x in (('lq_left', lq_left), ('lq_right', lq_right)):
        if x.dim() != 4 or (x.size(0), x.size(2), x.size(3)) != (n, h, w):
            raise ValueError(f'{name} must be (n, c, h, w) = ({n}, c, {h}, {w}) like the attention maps '
                             f'{tuple(m_rl.shape)}, got {tuple(x.shape)}.')
    left, right = _as_common_channels(lq_left, lq_right)

    def gather(m: Tensor, image: Tensor) -> Tensor:  # (M (x) I)(y, i) = sum_j M(y, i, j) I(y, j)
        return (m @ image.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    photometric = _mean((left - gather(m_rl, right)).abs() * v_l) + _mean((right - gather(m_lr, left)).abs() * v_r)
    eye = torch.eye(w, dtype=m_rl.dtype, device=m_rl.device)
    rows_l, rows_r = v_l.squeeze(1).unsqueeze(-1), v_r.squeeze(1).unsqueeze(-1)  # (n, h, w, 1): mask rows
    cycle = _mean((m_rl @ m_lr - eye).abs() * rows_l) + _mean((m_lr @ m_rl - eye).abs() * rows_r)
    smooth = sum(_mean((m[:, :-1] - m[:, 1:]).abs()) + _mean((m[:, :, :-1, :-1] - m[:, :, 1:, 1:]).abs())
                 for m in (m_rl, m_lr))
    return {'photometric': photometric, 'cycle': cycle, 'smooth': smooth,
            'total': weight * (photometric + cycle + smooth)}
