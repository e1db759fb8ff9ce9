"""PASSR's losses on its parallax attention maps, for ``CSPSRModel`` (registered as ``ParallaxAttentionLoss``)."""
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.passr_arch import AttentionMaps, passr_losses


@LOSS_REGISTRY.register()
class ParallaxAttentionLoss(nn.Module):
    """The photometric, cycle and smoothness losses of PASSRnet (Wang et al., CVPR 2019) on the attention maps a
    :class:`~cspsr_arch.archs.passr_arch.PASSR` stores after its forward pass (:func:`~cspsr_arch.archs.passr_arch.
    passr_losses`): ``loss_weight`` times their sum, as the paper adds them (lambda 0.005) to the SR loss.

    ``CSPSRModel`` adds it when ``train: attention_opt`` is set, so PASSR trains as its paper does or, without
    it, with the pixel loss alone like every other network of the comparison.

    Args:
        loss_weight (float): lambda. Default: 0.005.
    """

    def __init__(self, loss_weight: float = 0.005) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, maps: AttentionMaps, lq_left: Tensor, lq_right: Tensor) -> Tensor:
        """The weighted sum for one batch: ``maps`` of the forward pass on ``lq_left`` (VIS) and ``lq_right`` (NIR)."""
        return passr_losses(maps, lq_left, lq_right, self.loss_weight)['total']
