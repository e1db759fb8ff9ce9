"""Shallow feature extraction branch (VIS or NIR) and the pixel-shuffle reconstruction head."""
from basicsr.archs.arch_util import ResidualBlockNoBN
from torch import nn


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

    Args:
        num_feat (int): Input channels.
        out_ch (int): Output image channels.
        scale (int): Upscaling factor (2, 3 or 4).
    """

    def __init__(self, num_feat: int, out_ch: int, scale: int) -> None:
        super().__init__(nn.Conv2d(num_feat, out_ch * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))
