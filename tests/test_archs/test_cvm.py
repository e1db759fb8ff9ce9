"""Learned cross-view matching: stereo net, unsupervised loss, metrics, checkpoints, gradients via L_CSSC."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY

from cspsr_arch.archs.cross_spectral_stereo_arch import CrossSpectralStereoNet, correlation_volume
from cspsr_arch.archs.spectral_translation import SpectralTranslation
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.losses.stereo_loss import ssim_map
from cspsr_arch.models.stereo_utils import check_flip_geometry, load_stereo_weights


def _shifted_pair(shift: int, height: int = 48, width: int = 72, seed: int = 0):
    """A textured scene; the right view sees it shifted: right(x) = left(x + shift), so disp = shift."""
    torch.manual_seed(seed)
    scene = F.interpolate(torch.rand(1, 1, height // 3, (width + shift) // 3 + 1), size=(height, width + shift + 3),
                          mode='bicubic', align_corners=False).clamp(0, 1)
    return scene[..., :width], scene[..., shift:shift + width]


def test_correlation_volume_matches_a_direct_computation():
    torch.manual_seed(0)
    left, right = torch.randn(2, 3, 4, 9), torch.randn(2, 3, 4, 9)
    cost = correlation_volume(left, right, -2, 3)
    assert cost.shape == (2, 6, 4, 9)
    for i, d in enumerate(range(-2, 4)):
        for x in range(9):
            expected = (left[..., x] * right[..., x - d]).sum(1) if 0 <= x - d < 9 else torch.zeros(2, 4)
            assert torch.allclose(cost[:, i, :, x], expected, atol=1e-5), (d, x)


def test_untrained_stereo_net_finds_a_constant_shift_and_the_right_view_disparity():
    left, right = _shifted_pair(5)
    net = CrossSpectralStereoNet(max_disp=12).eval()
    with torch.no_grad():
        out = net(left.repeat(1, 3, 1, 1), right)  # grey VIS: the initial translation (luma) is exact
    assert out.disp_l.shape == out.disp_r.shape == out.pseudo_nir.shape == (1, 1, 48, 72)
    assert torch.allclose(out.pseudo_nir, left, atol=1e-6)
    inner = (..., slice(8, -8), slice(14, -8))
    assert abs(out.disp_l[inner].median().item() - 5) < 1.0
    assert abs(out.disp_r[inner].median().item() - 5) < 1.0
    assert out.disp_l.min() >= 0 and out.disp_l.max() <= 12


def test_spectral_translation_is_per_pixel():
    torch.manual_seed(0)
    net = SpectralTranslation()
    for param in net.parameters():
        torch.nn.init.normal_(param)
    img = torch.rand(1, 3, 8, 8)
    img2 = img.clone()
    img2[..., 4, 4] = 0.0
    changed = (net(img) - net(img2)).abs()[0, 0] > 0
    assert changed[4, 4] and changed.sum() == 1  # cannot shift its output towards the other view


def test_stereo_loss_prefers_the_true_disparity():
    left, right = _shifted_pair(4)
    loss = LOSS_REGISTRY.get('UnsupervisedStereoLoss')()
    true_d, zero = torch.full_like(left, 4.0), torch.zeros_like(left)
    assert loss(left, right, true_d, true_d) < 0.5 * loss(left, right, zero, zero)
    terms = loss.terms(left, right, true_d, true_d)
    assert terms['l_lr'] < 1e-6 and terms['l_smooth'] < 1e-6 and terms['l_rec'] < 0.02
    assert torch.allclose(ssim_map(left, left), torch.ones_like(left), atol=1e-4)


def test_disparity_metrics_by_hand():
    gt = np.array([[1.0, 2.0], [3.0, np.inf]])
    pred = np.array([[1.5, 2.0], [6.0, 0.0]])
    rmse = METRIC_REGISTRY.get('calculate_disparity_rmse')(pred, gt)
    assert rmse == pytest.approx(np.sqrt((0.25 + 0 + 9) / 3))
    assert METRIC_REGISTRY.get('calculate_bad_pixel_rate')(pred, gt, threshold=1.0) == pytest.approx(100 / 3)
    assert METRIC_REGISTRY.get('calculate_bad_pixel_rate')(pred, gt, threshold=0.4) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match='differ in size'):
        METRIC_REGISTRY.get('calculate_disparity_rmse')(pred[:1], gt)


def test_gradients_reach_the_learned_cvm_through_cssc_only():
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('CSPSR')(num_feat=8, num_dmf=2, upscale=2, max_disp=6)
    lq, nir = torch.rand(2, 3, 12, 16), torch.rand(2, 1, 12, 16)
    out = net(lq, nir)
    assert out.disp_l.shape == out.disp_r.shape == (2, 1, 12, 16)
    cssc = LOSS_REGISTRY.get('CrossSpectralSpatialConsistencyLoss')(occlusion_threshold=None)
    cssc(out.nir_sr, torch.rand(2, 1, 24, 32), out.disp_l, out.disp_r).backward()
    grads = {name: p.grad for name, p in net.cvm_net.named_parameters()}
    assert grads['aggregation.temperature'].abs() > 0
    assert grads['features.body.0.weight'].abs().sum() > 0
    assert grads['translation.mlp.4.weight'].abs().sum() > 0
    assert net.head_vis[0].weight.grad is None  # the VIS head plays no part in L_CSSC


def test_stereo_checkpoints_load_from_either_model(tmp_path):
    src = CrossSpectralStereoNet(max_disp=8)
    torch.save({'params': src.state_dict()}, tmp_path / 'stereo.pth')
    cspsr = ARCH_REGISTRY.get('CSPSR')(num_feat=8, num_dmf=1, upscale=2, max_disp=8)
    torch.save({'params': cspsr.state_dict()}, tmp_path / 'cspsr.pth')
    dst = CrossSpectralStereoNet(max_disp=8)
    load_stereo_weights(dst, str(tmp_path / 'stereo.pth'))
    assert all(torch.equal(a, b) for a, b in zip(dst.state_dict().values(), src.state_dict().values()))
    load_stereo_weights(dst, str(tmp_path / 'cspsr.pth'), 'params_ema')  # falls back to params
    assert all(torch.equal(a, b) for a, b in zip(dst.state_dict().values(), cspsr.cvm_net.state_dict().values()))
    with pytest.raises(CSPSRInputError, match='max_disp'):
        load_stereo_weights(CrossSpectralStereoNet(max_disp=12), str(tmp_path / 'stereo.pth'))
    with pytest.raises(CSPSRInputError, match='not found'):
        load_stereo_weights(dst, str(tmp_path / 'missing.pth'))


def test_horizontal_flip_with_non_negative_disparity_search_is_refused():
    opt = {'datasets': {'train': {'use_hflip': True}}}
    with pytest.raises(CSPSRInputError, match='use_hflip'):
        check_flip_geometry(opt, 0)
    check_flip_geometry(opt, -8)
    check_flip_geometry({'datasets': {'train': {'use_hflip': False}}}, 0)


def test_shift_augmentation_adds_the_shift_to_the_disparity():
    from basicsr.models import build_model
    opt = {
        'name': 'toy', 'model_type': 'CrossSpectralStereoModel', 'scale': 2, 'num_gpu': 0, 'is_train': True,
        'dist': False, 'rank': 0, 'world_size': 1, 'datasets': {'train': {'use_hflip': False}},
        'network_g': {'type': 'CrossSpectralStereoNet', 'num_feat': 4, 'num_agg': 8, 'max_disp': 12},
        'path': {},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
                  'stereo_opt': {'type': 'UnsupervisedStereoLoss'}, 'shift_augment': 6},
    }
    model = build_model(opt)
    left, right = _shifted_pair(3, height=16, width=40)
    model.feed_data({'lq': left.repeat(1, 3, 1, 1), 'lq_nir': right, 'disp': torch.full_like(left, 3.0)})
    torch.manual_seed(3)
    shifts = set()
    for _ in range(12):
        lq, lq_nir, disp = model.shifted_pair()
        shift = 40 - lq.size(-1)
        shifts.add(shift)
        assert lq_nir.shape == (1, 1, 16, 40 - shift) and torch.equal(disp, torch.full_like(disp, 3.0 + shift))
        # the shifted pair is still a stereo pair with disparity 3 + shift: the right view warps back exactly
        from cspsr_arch.archs.warp import warp_to_left
        back, valid = warp_to_left(lq_nir, disp)
        assert torch.allclose((back - lq[:, :1]) * valid, torch.zeros_like(back), atol=1e-6)
    assert len(shifts) > 2 and max(shifts) <= 6
    model.optimize_parameters(1)
    assert 'epe' in model.get_current_log()
