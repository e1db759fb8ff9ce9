"""Warp, dynamic convolution, CSFT, DMF and the CSPSR arch on tiny tensors."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY

from cspsr_arch.archs.csft import CSFT
from cspsr_arch.archs.dynamic_conv import DynamicConv, apply_pixel_kernels
from cspsr_arch.archs.warp import occlusion_mask, shift_horizontally, upscale_disparity, warp_to_left, warp_to_right


def test_warp_constant_shift_is_exact():
    torch.manual_seed(0)
    scene = torch.rand(1, 2, 5, 40)
    left, right = scene[..., :32], scene[..., 3:35]  # right(x) = left(x + 3): disp = 3
    disp = torch.full((1, 1, 5, 32), 3.0)
    back, valid = warp_to_left(right, disp)
    assert valid[..., :3].sum() == 0 and valid[..., 3:].min() == 1
    assert torch.allclose(back[..., 3:], left[..., 3:], atol=1e-6)
    fwd, valid_r = warp_to_right(left, disp)
    assert valid_r[..., 29:].sum() == 0
    assert torch.allclose(fwd[..., :29], right[..., :29], atol=1e-6)


def test_warp_subpixel_is_linear_interpolation():
    ramp = torch.arange(16.0).view(1, 1, 1, 16).repeat(1, 1, 3, 1)
    out, _ = warp_to_left(ramp, torch.full((1, 1, 3, 16), 2.25))
    assert torch.allclose(out[..., 3:], ramp[..., 3:] - 2.25, atol=1e-5)


def test_warp_samples_as_basicsr_flow_warp():
    from basicsr.archs.arch_util import flow_warp
    torch.manual_seed(0)
    img, offset = torch.rand(2, 3, 6, 9), torch.randn(2, 1, 6, 9) * 3
    flow = torch.cat([offset, torch.zeros_like(offset)], 1).permute(0, 2, 3, 1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # flow_warp's torch.meshgrid without indexing=
        ref = flow_warp(img, flow, interp_mode='bilinear', padding_mode='zeros', align_corners=True)
    assert torch.allclose(shift_horizontally(img, offset)[0], ref, atol=1e-6)
    zero = torch.zeros(2, 2, 6, 9, 2)[:, 0]
    assert torch.equal(shift_horizontally(img, torch.zeros_like(offset))[0],
                       flow_warp(img, zero, interp_mode='bilinear', padding_mode='zeros', align_corners=True))


def test_upscale_disparity_scales_values():
    disp = torch.full((1, 1, 4, 5), 1.5)
    up = upscale_disparity(disp, (16, 20))
    assert up.shape == (1, 1, 16, 20) and torch.allclose(up, torch.full_like(up, 6.0))


def test_occlusion_mask_flags_inconsistent_pixels():
    d_l = torch.full((1, 1, 2, 10), 2.0)
    d_r = torch.full((1, 1, 2, 10), 2.0)
    d_r[..., 4] = 5.0  # right pixel 4 sees something nearer: left pixel 6 is occluded
    mask = occlusion_mask(d_l, d_r, threshold=0.5)
    assert mask[0, 0, 0].tolist() == [0, 0, 1, 1, 1, 1, 0, 1, 1, 1]


def test_dynamic_conv_equals_conv2d_for_a_constant_kernel():
    torch.manual_seed(0)
    feat = torch.rand(2, 4, 7, 9)
    kernel = torch.randn(3, 3)
    kernels = kernel.reshape(1, 9, 1, 1).expand(2, 9, 7, 9)
    ours = apply_pixel_kernels(feat, kernels, 3)
    ref = F.conv2d(feat, kernel.view(1, 1, 3, 3).repeat(4, 1, 1, 1), padding=1, groups=4)
    assert torch.allclose(ours, ref, atol=1e-5)
    with_grad = apply_pixel_kernels(feat.clone().requires_grad_(), kernels, 3)  # the path with a backward pass
    assert torch.allclose(with_grad, ref, atol=1e-5)


def test_dynamic_conv_module_uses_normalised_predicted_kernels():
    torch.manual_seed(0)
    module = DynamicConv(num_feat=4, kernel_size=5)
    vis, nir = torch.rand(1, 4, 6, 6), torch.rand(1, 4, 6, 6)
    kernels = torch.softmax(module.predict(torch.cat([vis, nir], 1)), dim=1)
    assert torch.allclose(module(vis, nir), apply_pixel_kernels(nir, kernels, 5), atol=1e-6)
    assert torch.allclose(module.kernels(vis, nir).sum(1), torch.ones(1, 6, 6))
    # starts close to the identity filter: centre tap about 0.9
    assert torch.allclose(module.kernels(vis, nir)[:, 12], torch.full((1, 6, 6), 0.9), atol=0.01)
    # bounded: the output never exceeds the largest input magnitude, whatever the predictor weights
    with torch.no_grad():
        module.predict.weight.normal_(std=10.0)
    big = torch.randn(1, 4, 6, 6) * 100
    assert module(vis, big).abs().max() <= big.abs().max() + 1e-3


def test_csft_matches_equation_2_by_hand():
    torch.manual_seed(0)
    module = CSFT(num_feat=2).eval()
    module.norm_vis.running_mean.fill_(0.5)
    module.norm_vis.running_var.fill_(4.0)
    vis, nir = torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 3)
    bn_vis = (vis - 0.5) / torch.sqrt(torch.tensor(4.0 + 1e-5))
    bn_nir = nir / torch.sqrt(torch.tensor(1.0 + 1e-5))
    w_s1 = torch.sigmoid(F.conv2d(vis, module.spatial_vis.weight, module.spatial_vis.bias, padding=1))
    cat = torch.cat([bn_vis, bn_nir], 1)
    gap = cat.mean(dim=(2, 3), keepdim=True)
    w_c = torch.sigmoid(F.conv2d(gap, module.channel.weight, module.channel.bias))
    w_c1, w_c2 = w_c[:, :2], w_c[:, 2:]
    w_s2 = torch.sigmoid(F.conv2d(cat, module.spatial_cat.weight, module.spatial_cat.bias, padding=1))
    expected = bn_nir * w_s1 * w_c2 + bn_vis * w_s1 * w_s2 * w_c1
    assert torch.allclose(module(vis, nir), expected, atol=1e-6)


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('cvm', ['learned', 'given', 'none'])
def test_cspsr_shapes_odd_sizes(scale, cvm):
    net = ARCH_REGISTRY.get('CSPSR')(num_feat=8, num_dmf=2, upscale=scale, cvm=cvm, max_disp=4)
    lq, nir, disp = torch.rand(2, 3, 11, 13), torch.rand(2, 1, 11, 13), torch.rand(2, 1, 11, 13)
    out = net(lq, nir, disp)
    assert out.sr.shape == (2, 3, 11 * scale, 13 * scale)
    assert out.nir_sr.shape == (2, 1, 11 * scale, 13 * scale)
    out.sr.mean().backward()


@pytest.mark.parametrize('kwargs', [{'use_dyconv': False}, {'use_csft': False}, {'norm': 'none'}, {'norm': 'instance'},
                                    {'global_skip': False}])
def test_cspsr_switches_build_and_train(kwargs):
    net = ARCH_REGISTRY.get('CSPSR')(num_feat=8, num_dmf=2, upscale=2, **kwargs)
    out = net(torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8), torch.zeros(2, 1, 8, 8))
    (out.sr.mean() + out.nir_sr.mean()).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_cspsr_rejects_bad_inputs():
    net = ARCH_REGISTRY.get('CSPSR')(num_feat=8, num_dmf=1, upscale=2)
    with pytest.raises(ValueError, match='VIS input'):
        net(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match='differ in batch or size'):
        net(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 9), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match='needs the left disparity'):
        ARCH_REGISTRY.get('CSPSR')(num_feat=8, num_dmf=1, upscale=2, cvm='given')(torch.rand(1, 3, 8, 8),
                                                                                  torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match='cvm must be one of'):
        ARCH_REGISTRY.get('CSPSR')(cvm='magic')
    with pytest.raises(ValueError, match='norm must be one of'):
        ARCH_REGISTRY.get('CSPSR')(norm=True)


def test_instance_norm_csft_is_the_same_in_training_and_test():
    torch.manual_seed(0)
    module = CSFT(num_feat=4, norm='instance')
    vis, nir = torch.rand(2, 4, 5, 5), torch.rand(2, 4, 5, 5)
    train_out = module.train()(vis, nir)
    assert torch.allclose(train_out, module.eval()(vis, nir), atol=1e-6)
    assert torch.allclose(module(vis[:1], nir[:1]), train_out[:1], atol=1e-6)  # per image: batch-independent


def test_dynamic_filtering_gradients_are_exact():
    torch.manual_seed(0)
    feat = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    kernels = torch.rand(1, 9, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, k: apply_pixel_kernels(f, k, 3), (feat, kernels))
    # a 5x5 window on a 2-row image (taps beyond the image are skipped), and each input alone needing a gradient
    feat = torch.rand(2, 3, 2, 6, dtype=torch.float64, requires_grad=True)
    kernels = torch.rand(2, 25, 2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, k: apply_pixel_kernels(f, k, 5), (feat, kernels))
    assert torch.autograd.gradcheck(lambda f: apply_pixel_kernels(f, kernels.detach(), 5), (feat, ))
    assert torch.autograd.gradcheck(lambda k: apply_pixel_kernels(feat.detach(), k, 5), (kernels, ))


def test_channels_last_layout_does_not_change_the_result():
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('CSPSR')(num_feat=8, num_dmf=2, upscale=3, max_disp=4).eval()
    assert net.head_vis[0].weight.is_contiguous(memory_format=torch.channels_last)
    lq, nir = torch.rand(2, 3, 9, 13), torch.rand(2, 1, 9, 13)
    with torch.no_grad():
        fast = net(lq, nir)
        net.to(memory_format=torch.contiguous_format)
        plain = net(lq, nir)
    for a, b in zip(fast, plain):
        assert torch.allclose(a, b, atol=1e-5)


def test_middlebury_right_view_warps_back_to_the_left_view():
    """The real Middlebury motorcycle pair (scikit-image) with its ground-truth disparity."""
    from pathlib import Path

    import cv2
    import numpy as np
    from skimage import data as skdata
    folder = Path(skdata.__file__).parent
    left = cv2.imread(str(folder / 'motorcycle_left.png'), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    right = cv2.imread(str(folder / 'motorcycle_right.png'), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    gt = np.load(folder / 'motorcycle_disp.npz')['arr_0'].astype(np.float32)
    known = np.isfinite(gt)
    back, valid = warp_to_left(torch.from_numpy(right)[None, None], torch.from_numpy(np.where(known, gt, 0))[None, None])
    mask = known & (valid[0, 0].numpy() > 0)
    assert mask.mean() > 0.85
    err = np.abs(back[0, 0].numpy() - left)[mask]
    unwarped = np.abs(right - left)[mask]
    assert err.mean() < 0.035 and np.median(err) < 0.015  # measured: 0.029 and 0.011
    assert err.mean() < 0.25 * unwarped.mean()  # without the warp: 0.148
