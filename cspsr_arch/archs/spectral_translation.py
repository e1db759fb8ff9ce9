"""Spectral translation: a small network that renders a pseudo-NIR image from a VIS image (Zhi et al.)."""
import torch
from torch import Tensor, nn

# ITU-R BT.601 luma weights of R, G, B (the network's VIS input is RGB in [0, 1]).
LUMA_RGB = (0.299, 0.587, 0.114)


class SpectralTranslation(nn.Module):
    """VIS (RGB) -> pseudo-NIR, as the first half of Zhi et al.'s cross-spectral stereo network.

    ``pseudo_nir = luma(vis) + mlp(vis)``, with ``mlp`` a per-pixel network (1x1 convolutions). The
    last layer starts at zero, so the translation starts as the luma image (a fair first guess of the
    NIR appearance, which lets the disparity network's unsupervised training start on a meaningful
    image) and learns the spectral differences (vegetation bright in NIR, blue sky dark) through the
    view-reconstruction loss.

    Why per pixel, unlike Zhi et al.'s encoder-decoder: a translation with a spatial receptive field can
    learn to shift its output towards the other view, which lowers the view-reconstruction loss with
    a smaller disparity; a per-pixel mapping cannot shift. Our first runs, with a 3x3-convolution body
    (receptive field 13 pixels), gave disparities biased low on the synthetic scenes (figures:
    docs/design_notes.md).

    Args:
        num_in_ch (int): VIS channels (RGB order when 3). Default: 3.
        num_feat (int): Width of the per-pixel network. Default: 16.
        num_layer (int): Hidden layers of the per-pixel network. Default: 2.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 16, num_layer: int = 2) -> None:
        super().__init__()
        luma = torch.tensor(LUMA_RGB) if num_in_ch == 3 else torch.full((num_in_ch, ), 1.0 / num_in_ch)
        self.register_buffer('luma', luma.view(1, num_in_ch, 1, 1), persistent=False)
        layers = [nn.Conv2d(num_in_ch, num_feat, 1), nn.LeakyReLU(0.1, inplace=True)]
        for _ in range(num_layer - 1):
            layers += [nn.Conv2d(num_feat, num_feat, 1), nn.LeakyReLU(0.1, inplace=True)]
        layers.append(nn.Conv2d(num_feat, 1, 1))
        self.mlp = nn.Sequential(*layers)
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, vis: Tensor) -> Tensor:
        """Pseudo-NIR (n, 1, h, w) of a VIS image (n, c, h, w)."""
        return (vis * self.luma).sum(dim=1, keepdim=True) + self.mlp(vis)
