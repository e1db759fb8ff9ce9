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


# A foreground object (disparity 3) in front of a background (disparity 1), one row of 8 HR pixels:
# left pixels 4-5 are the object; in the right view it is at 1-2. Left pixels 2-3 are background hidden
# behind the object in the right view; right pixels 3-4 are background hidden in the left view.
DISP_L = [1, 1, 1, 1, 3, 3, 1, 1]
DISP_R = [1, 3, 3, 1, 1, 1, 1, 1]


def _cssc_by_hand(sr, gt, d_l, d_r, threshold):
    """L_CSSC with integer disparities, pixel by pixel (lists of one row)."""
    width = len(sr)
    left = [(sr[x] - gt[x - d_l[x]])**2 for x in range(width)
            if 0 <= x - d_l[x] < width and abs(d_l[x] - d_r[x - d_l[x]]) <= threshold]
    right = [(gt[x] - sr[x + d_r[x]])**2 for x in range(width)
             if 0 <= x + d_r[x] < width and abs(d_r[x] - d_l[x + d_r[x]]) <= threshold]
    return sum(left) / len(left) + sum(right) / len(right)


def test_different_left_and_right_disparities_with_occlusions_by_hand():
    torch.manual_seed(1)
    sr, gt = torch.rand(1, 1, 1, 8), torch.rand(1, 1, 1, 8)
    d_l, d_r = torch.tensor(DISP_L, dtype=torch.float32), torch.tensor(DISP_R, dtype=torch.float32)
    d_l, d_r = d_l.view(1, 1, 1, 8), d_r.view(1, 1, 1, 8)
    loss = Loss(loss_weight=1.0, occlusion_threshold=1.0)(sr, gt, d_l, d_r)
    expected = _cssc_by_hand(sr.flatten().tolist(), gt.flatten().tolist(), DISP_L, DISP_R, 1.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # the two terms count left pixels 1, 4, 5, 6, 7 and right pixels 0, 1, 2, 5, 6: an error at a pixel
    # occluded in the other view (left 2-3, right 3-4) or without a match (left 0, right 7) is not counted
    for view, pixels in (('left', [0, 2, 3]), ('right', [3, 4, 7])):
        sr2, gt2 = sr.clone(), gt.clone()
        (sr2 if view == 'left' else gt2)[..., pixels] += 5.0
        assert Loss(loss_weight=1.0)(sr2, gt2, d_l, d_r).item() == pytest.approx(loss.item(), rel=1e-5), view
    # a tolerance is inclusive (2.0 keeps the differences of 2), and without the check the occluded pixels count
    for threshold in (2.0, 1.99, None):
        by_hand = _cssc_by_hand(sr.flatten().tolist(), gt.flatten().tolist(), DISP_L, DISP_R,
                                float('inf') if threshold is None else threshold)
        assert Loss(loss_weight=1.0, occlusion_threshold=threshold)(sr, gt, d_l, d_r).item() == pytest.approx(
            by_hand, rel=1e-5), threshold
    # the paper's weight, 0.1, is the default
    assert Loss()(sr, gt, d_l, d_r).item() == pytest.approx(0.1 * loss.item(), rel=1e-5)


def test_the_model_passes_the_left_then_the_right_disparity():
    """CSPSRModel's l_cssc equals the loss of its NIR output with (disp_l, disp_r) in this order."""
    from basicsr.models import build_model
    opt = {'name': 'x', 'model_type': 'CSPSRModel', 'scale': 2, 'num_gpu': 0, 'dist': False, 'rank': 0,
           'world_size': 1, 'is_train': True, 'datasets': {}, 'path': {},
           'network_g': {'type': 'CSPSR', 'num_feat': 4, 'num_dmf': 1, 'upscale': 2, 'cvm': 'given'},
           'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [9]},
                     'total_iter': 9, 'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0},
                     'cssc_opt': {'type': 'CrossSpectralSpatialConsistencyLoss', 'loss_weight': 1.0}}}
    torch.manual_seed(0)
    model = build_model(opt)
    d_l = torch.tensor(DISP_L, dtype=torch.float32).view(1, 1, 1, 8).expand(1, 1, 4, 8) / 2  # LR pixels
    d_r = torch.tensor(DISP_R, dtype=torch.float32).view(1, 1, 1, 8).expand(1, 1, 4, 8) / 2
    model.feed_data({'lq': torch.rand(1, 3, 4, 8), 'lq_nir': torch.rand(1, 1, 4, 8), 'gt': torch.rand(1, 3, 8, 16),
                     'gt_nir': torch.rand(1, 1, 8, 16), 'disp': d_l.contiguous(), 'disp_r': d_r.contiguous()})
    model.optimize_parameters(1)
    nir_sr = model.output_nir.detach()
    right_order = Loss(loss_weight=1.0)(nir_sr, model.gt_nir, d_l, d_r).item()
    swapped = Loss(loss_weight=1.0)(nir_sr, model.gt_nir, d_r, d_l).item()
    assert abs(right_order - swapped) > 1e-3 * right_order  # the test can tell the two orders apart
    assert model.log_dict['l_cssc'] == pytest.approx(right_order, rel=1e-5)
