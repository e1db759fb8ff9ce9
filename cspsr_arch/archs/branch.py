"""Shallow feature extraction branch (VIS or NIR) and the pixel-shuffle reconstruction head."""
from typing import Optional

from basicsr.archs.arch_util import ResidualBlockNoBN
from torch import Tensor, nn

from cspsr_arch.archs.bicubic import bicubic_phases
from cspsr_arch.archs.precision import full_precision


class ShallowBranch(nn.Sequential):
    """Two 3x3 convolutions and a residual block: the per-spectrum feature extractor of the paper.

    Args:
        in_ch (int): Input channels (3 for VIS; NIR plus its validity mask for the NIR branch).
        num_feat (int): Output channels C. Default: 64.
    """

    def __init__(self, in_ch: int, num_feat: int = 64) -> None:
        super().__init__(
            nn.Conv2d(in_ch, num_feat, 3, 1, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            ResidualBlockNoBN(num_feat=num_feat),
        )


class ShuffleHead(nn.Sequential):
    """Reconstruction: a 3x3 convolution to ``out_ch * scale**2`` channels and a pixel shuffle.

    With ``base``, the bicubic upsampling of ``base`` is added to the output (a global skip): in its
    polyphase form, to the convolution's output before the shuffle (:mod:`cspsr_arch.archs.bicubic`).

    Args:
        num_feat (int): Input channels.
        out_ch (int): Output image channels.
        scale (int): Upscaling factor (2, 3 or 4).
    """

    def __init__(self, num_feat: int, out_ch: int, scale: int) -> None:
        super().__init__(nn.Conv2d(num_feat, out_ch * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))

    @full_precision  # fp32 under autocast: the output's precision (cspsr_arch/archs/precision.py)
    def forward(self, x: Tensor, base: Optional[Tensor] = None) -> Tensor:
        """``shuffle(conv(x))``, plus ``bicubic(base)`` when ``base`` (n, out_ch, h, w) is given."""
        out = self[0](x)
        if base is not None:
            out = out.add_(bicubic_phases(base, self[1].upscale_factor))  # in place: conv's backward needs no output
        return self[1](out)

    @full_precision
    def forward_phases(self, x: Tensor, phases: Optional[Tensor] = None) -> Tensor:
        """``shuffle(conv(x) + phases)``: a global skip already in the pre-shuffle layout, (n, out_ch*scale**2, h, w).

        The NIR head of ``CSPSR(nir_scale=f)`` with ``f > 1`` adds its skip this way, from
        :func:`~cspsr_arch.archs.bicubic.bicubic_phases_unshuffled` of the warped NIR at ``f`` x LR.
        """
        out = self[0](x)
        if phases is not None:
            out = out.add_(phases)
        return self[1](out)
