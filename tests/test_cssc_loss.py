"""L_CSSC: zero for a perfect prediction, equal to a hand computation on a tiny case."""
import pytest
import torch
from basicsr.utils.registry import LOSS_REGISTRY

Loss = LOSS_REGISTRY.get('CrossSpectralSpatialConsistencyLoss')


def _scene(width=24, shift=4):
    torch.manual_seed(0)
    scene = torch.rand(1, 1, 6, width + shift)
    return scene[..., :width], scene[..., shift:shift + width]  # left view, right view (disp = shift)


def test_zero_for_perfect_prediction():
    left, right = _scene()
    disp_lr = torch.full((1, 1, 3, 12), 2.0)  # LR (x2) disparity 2 = HR disparity 4
    loss = Loss(loss_weight=0.1)(left, right, disp_lr, disp_lr)
    assert loss.item() < 1e-10


def test_matches_hand_computation():
    left, right = _scene(width=8, shift=2)
    pred = left + 0.1
    disp = torch.full((1, 1, 6, 8), 2.0)
    loss = Loss(loss_weight=0.5, occlusion_threshold=None)(pred, right, disp, disp)
    # term 1: pred vs right shifted back to the left view, valid where x >= 2 -> (0.1)^2
    # term 2: right vs pred shifted to the right view, valid where x <= 5 -> (0.1)^2
    assert loss.item() == pytest.approx(0.5 * (0.01 + 0.01), rel=1e-4)
    # an error only in the left-view columns the right camera never sees (x < 2) is not counted by term 2
    pred2 = left.clone()
    pred2[..., :2] += 1.0
    term = Loss(loss_weight=1.0, occlusion_threshold=None)(pred2, right, disp, disp)
    assert term.item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_flows_to_prediction_and_needs_both_disparities():
    left, right = _scene()
    pred = (left + 0.05).requires_grad_()
    disp = torch.full((1, 1, 6, 24), 4.0)
    Loss()(pred, right, disp, disp).backward()
    assert pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='left and the right disparity'):
        Loss()(pred, right, disp, None)
