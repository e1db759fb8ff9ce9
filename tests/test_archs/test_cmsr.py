"""CMSR (Shacht et al., CVPR 2021) as a comparison network: shapes, size, its alignment by value, its guide, checks."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from basicsr.utils.registry import ARCH_REGISTRY

from cspsr_arch.archs import cmsr_warp as W
from cspsr_arch.archs.cmsr_arch import CMSR
from cspsr_arch.archs.guide_align import GuideAligner

TINY = {'num_feat': 8, 'num_layers': 3, 'guide_feat': 4, 'guide_layers': 2, 'loc_feat': 4, 'loc_layers': 2,
        'tps_grid': 4, 'cpab_cells': 2}


def _bicubic(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode='bicubic', align_corners=False)


def _perturb_aligner(net: CMSR, scale: float = 0.05) -> None:
    """Give the zero-initialised transformer heads values, as training would: the guide is then deformed."""
    with torch.no_grad():
        for name, p in net.aligner.named_parameters():
            if 'head' in name:
                p.add_(scale * torch.randn_like(p))


@pytest.mark.parametrize('upscale, nir_scale, height, width', [(2, 1, 8, 10), (2, 2, 8, 10), (4, 1, 13, 19),
                                                               (4, 4, 13, 19), (4, 2, 13, 19), (3, 3, 5, 7)])
def test_output_shape_and_fields(upscale, nir_scale, height, width):
    net = CMSR(**TINY, upscale=upscale, nir_scale=nir_scale).eval()
    lq, nir = torch.rand(2, 3, height, width), torch.rand(2, 1, nir_scale * height, nir_scale * width)
    with torch.no_grad():
        out = net(lq, nir)
    assert out.sr.shape == (2, 3, upscale * height, upscale * width)
    assert out.nir_sr is None and out.disp_r is None
    assert out.disp_l.shape == (2, 1, height, width) and not out.disp_l.any()
    assert (net.cvm, net.branches, net.upscale, net.nir_scale) == ('none', 'single', upscale, nir_scale)


def test_registered_and_built_from_an_option_dict():
    from basicsr.archs import build_network
    assert ARCH_REGISTRY.get('CMSR') is CMSR
    net = build_network({'type': 'CMSR', **TINY, 'upscale': 2})
    assert isinstance(net, CMSR) and net.upscale == 2


def test_paper_size_counts_the_layers_of_the_official_code():
    """The paper states no parameter count; its code (configs.Config, ZSSR.build_network) lists bias-free filters:
    upsampling branch 3x3 [3->64], 6 x [64->64], [64->3] (width 64, depth 8); guide branch (depth_guider 4,
    width 16) 3x3 [1->16], 2 x [16->16], 1x1 [16->3]. The localisation network is this port's addition."""
    def count(shapes):
        return sum(k * k * cin * cout for k, cin, cout in shapes)

    body = count([(3, 3, 64)] + [(3, 64, 64)] * 6 + [(3, 64, 3)])
    guide = count([(3, 1, 16)] + [(3, 16, 16)] * 2 + [(1, 16, 3)])
    assert (body, guide) == (224640, 4800)
    net = CMSR()
    assert sum(p.numel() for p in net.body.parameters()) == body
    assert sum(p.numel() for p in net.guide_net.parameters()) == guide
    total = sum(p.numel() for p in net.parameters())
    assert abs(total - (body + guide)) / (body + guide) < 0.05, total  # the localisation network: ~3.6 %
    assert total == 237674


def test_zero_heads_sample_the_guide_at_its_own_pixels():
    """At the start (heads zero, ddtn's initialisation) the transformer is the identity: the guide comes back."""
    torch.manual_seed(0)
    aligner = GuideAligner(4, loc_feat=4, loc_layers=2, tps_grid=4, cpab_cells=2)
    guide = torch.rand(2, 1, 23, 31)
    vis = torch.rand(2, 3, 23, 31)
    assert torch.equal(aligner.grid(*aligner.predict(vis, guide), (23, 31)), W.identity_grid(23, 31, guide).expand(
        2, -1, -1, -1))
    assert torch.allclose(aligner(vis, guide), guide, atol=1e-5)  # grid_sample's unnormalising rounds by ~1e-6


def test_an_integer_affine_translation_shifts_the_guide_by_whole_pixels():
    """x' = x + 2k/(w-1) samples pixel j + k (normalised so that -1 and 1 are the end pixels' centres); beyond the
    right edge the border pixel (clamped, as ddtn's sampler)."""
    aligner = GuideAligner(4, tps_grid=0, cpab_cells=0)
    height, width, k = 6, 11, 3
    guide = torch.rand(1, 1, height, width)
    theta = torch.tensor([[[1.0, 0.0, 2.0 * k / (width - 1)], [0.0, 1.0, 0.0]]])
    out = W.sample_guide(guide, aligner.grid(theta, None, None, None, (height, width)))
    assert torch.allclose(out[..., :width - k], guide[..., k:], atol=1e-5)
    assert torch.allclose(out[..., width - k:], guide[..., -1:].expand(-1, -1, -1, k), atol=1e-5)


def test_the_affine_map_samples_where_pytorchs_affine_grid_does():
    """Only the affine map: the grid is ``F.affine_grid(theta, align_corners=True)`` (the same normalisation)."""
    aligner = GuideAligner(4, tps_grid=0, cpab_cells=0)
    theta = torch.tensor([[[0.9, 0.2, 0.05], [-0.1, 1.1, -0.03]]])
    expected = F.affine_grid(theta, (1, 1, 7, 12), align_corners=True)
    assert torch.allclose(aligner.grid(theta, None, None, None, (7, 12)), expected, atol=1e-6)


def test_tps_is_scipys_thin_plate_spline():
    """The spline through the moved control points, against SciPy's thin-plate RBF interpolant with an affine part."""
    interpolate = pytest.importorskip('scipy.interpolate')
    torch.manual_seed(0)
    ctrl, inv = W.tps_system(4)
    offsets = 0.05 * torch.randn(1, 16, 2, dtype=torch.float64)
    points = torch.rand(1, 30, 2, dtype=torch.float64) * 2.4 - 1.2
    spline = interpolate.RBFInterpolator(ctrl.numpy(), (ctrl + offsets[0]).numpy(), kernel='thin_plate_spline',
                                         degree=1)
    expected = torch.from_numpy(spline(points[0].numpy()))
    assert torch.allclose(W.tps_displace(points, offsets, ctrl, inv)[0], expected, atol=1e-8)


def test_tps_through_affinely_moved_control_points_is_that_affine_map():
    """A thin-plate spline reproduces an affine map exactly (its kernel weights vanish), here at off-grid points."""
    ctrl, inv = W.tps_system(4)
    ctrl, inv = ctrl.float(), inv.float()
    mat, shift = torch.tensor([[1.05, 0.1], [-0.08, 0.95]]), torch.tensor([0.03, -0.02])
    offsets = (ctrl @ mat.t() + shift - ctrl).unsqueeze(0)
    points = torch.rand(1, 50, 2) * 2 - 1
    assert torch.allclose(W.tps_displace(points, offsets, ctrl, inv), points @ mat.t() + shift, atol=1e-5)
    assert torch.allclose(W.tps_displace(ctrl.unsqueeze(0), offsets, ctrl, inv), ctrl + offsets, atol=1e-5)


def test_cpab_velocity_is_the_linear_interpolation_on_the_triangles():
    """Vertex values at the vertices; on the top triangle of cell (0, 0) of a 2x2 tessellation the weights
    centre 2t, upper-left 1 - s - t, upper-right s - t (s, t the position in the cell)."""
    torch.manual_seed(0)
    corners, centres = torch.randn(1, 3, 3, 2), torch.randn(1, 2, 2, 2)
    at = torch.tensor([[[-1.0, -1.0], [0.0, -1.0], [-0.5, -0.5], [1.0, 1.0], [0.5, 0.5]]])
    expected = torch.stack([corners[0, 0, 0], corners[0, 0, 1], centres[0, 0, 0], corners[0, 2, 2], centres[0, 1, 1]])
    assert torch.allclose(W.cpab_velocity(at, corners, centres)[0], expected, atol=1e-6)
    s, t = 0.5, 0.2  # cell (0, 0) spans [-1, 0]^2: the point (-1 + s, -1 + t)
    value = 2 * t * centres[0, 0, 0] + (1 - s - t) * corners[0, 0, 0] + (s - t) * corners[0, 0, 1]
    point = torch.tensor([[[-1 + s, -1 + t]]])
    assert torch.allclose(W.cpab_velocity(point, corners, centres)[0, 0], value, atol=1e-6)
    left = torch.tensor([[[-1 + t, -1 + s]]])  # the mirror point lies in the left triangle: centre, ul, ll
    value = 2 * t * centres[0, 0, 0] + (1 - s - t) * corners[0, 0, 0] + (s - t) * corners[0, 1, 0]
    assert torch.allclose(W.cpab_velocity(left, corners, centres)[0, 0], value, atol=1e-6)
    right = torch.tensor([[[-t, -1 + s]]])  # d = 1 - x: centre, upper-right, lower-right
    value = 2 * t * centres[0, 0, 0] + (1 - s - t) * corners[0, 0, 1] + (s - t) * corners[0, 1, 1]
    assert torch.allclose(W.cpab_velocity(right, corners, centres)[0, 0], value, atol=1e-6)
    bottom = torch.tensor([[[-1 + s, -t]]])  # d = 1 - y: centre, lower-left, lower-right
    value = 2 * t * centres[0, 0, 0] + (1 - s - t) * corners[0, 1, 0] + (s - t) * corners[0, 1, 1]
    assert torch.allclose(W.cpab_velocity(bottom, corners, centres)[0, 0], value, atol=1e-6)


def test_cpab_flow_of_a_constant_velocity_is_a_translation():
    points = torch.rand(1, 40, 2) * 2 - 1
    velocity = torch.tensor([0.1, -0.05])
    corners, centres = velocity.expand(1, 3, 3, 2), velocity.expand(1, 2, 2, 2)
    assert torch.allclose(W.cpab_flow(points, corners, centres, 8), points + velocity, atol=1e-6)


def test_the_coarse_grid_stays_within_a_tenth_of_a_pixel_of_the_dense_one():
    """The composed map evaluated at 33 x 33 points and interpolated, against every pixel of an 80 x 60 output:
    TPS offsets and CPAB velocities of ~0.2 px drawn independently per point (measured error: ~0.05 px)."""
    torch.manual_seed(0)
    aligner = GuideAligner(4, tps_grid=8, cpab_cells=4, warp_samples=33)
    theta = aligner.affine_identity + 0.02 * torch.randn(1, 2, 3)
    params = (theta, 0.005 * torch.randn(1, 64, 2), 0.005 * torch.randn(1, 5, 5, 2), 0.005 * torch.randn(1, 4, 4, 2))
    size = (60, 80)
    coarse = aligner.grid(*params, size)
    aligner.warp_samples = 80
    dense = aligner.grid(*params, size)
    pixels = (coarse - dense).abs() * torch.tensor([(size[1] - 1) / 2, (size[0] - 1) / 2])
    assert 0 < pixels.max() < 0.1, pixels.max()
    assert (dense - W.identity_grid(*size, dense)).abs().max() * (size[1] - 1) / 2 > 1  # a deformation of pixels


@pytest.mark.parametrize('upscale, nir_scale', [(4, 1), (4, 4), (4, 2), (2, 1)])
def test_the_fusion_adds_the_guide_branch_to_the_residual_upsampling(upscale, nir_scale):
    """By hand: body's last convolution zero, guide branch relu(NIR) times c per VIS channel, identity
    transformer: sr = bicubic(VIS) + c * guide, the guide the bicubic NIR (the given HR NIR at f = upscale)."""
    torch.manual_seed(0)
    net = CMSR(**TINY, upscale=upscale, nir_scale=nir_scale).eval()
    c = torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        net.body[-1].weight.zero_()
        first, last = net.guide_net[0], net.guide_net[-1]
        first.weight.zero_()
        first.weight[0, 0, 1, 1] = 1.0  # channel 0 = the guide itself
        last.weight.zero_()
        last.weight[:, 0, 0, 0] = c
    height, width = 5, 7
    lq, nir = torch.rand(1, 3, height, width), torch.rand(1, 1, nir_scale * height, nir_scale * width)
    size = (upscale * height, upscale * width)
    guide = nir if nir_scale == upscale else _bicubic(nir, size)
    with torch.no_grad():
        sr = net(lq, nir).sr
    assert torch.allclose(sr, _bicubic(lq, size) + c.view(1, 3, 1, 1) * guide.clamp_min(0), atol=1e-5)


def test_strict_checkpoint_round_trip():
    torch.manual_seed(0)
    net = CMSR(**TINY, upscale=2).eval()
    _perturb_aligner(net)
    state = net.state_dict()
    assert not any('tps_inv' in key or 'identity' in key for key in state)  # fixed buffers stay out
    torch.manual_seed(1)
    other = CMSR(**TINY, upscale=2).eval()
    other.load_state_dict(state, strict=True)
    lq, nir = torch.rand(1, 3, 9, 11), torch.rand(1, 1, 9, 11)
    with torch.no_grad():
        assert torch.equal(net(lq, nir).sr, other(lq, nir).sr)


@pytest.mark.parametrize('upscale, nir_scale', [(4, 1), (4, 4), (2, 2)])
def test_the_nir_changes_the_output(upscale, nir_scale):
    torch.manual_seed(0)
    net = CMSR(**TINY, upscale=upscale, nir_scale=nir_scale).eval()
    _perturb_aligner(net)
    height, width, f = 6, 9, nir_scale
    lq, nir = torch.rand(1, 3, height, width), torch.rand(1, 1, f * height, f * width)
    other = torch.rand_like(nir)
    if f > 1:  # the same LR NIR (f x f means), different fine detail: the HR detail reaches the output
        other = other - F.interpolate(F.avg_pool2d(other - nir, f), scale_factor=f, mode='nearest')
        assert torch.allclose(F.avg_pool2d(other, f), F.avg_pool2d(nir, f), atol=1e-6)
    with torch.no_grad():
        assert (net(lq, nir).sr - net(lq, other).sr).abs().max() > 1e-4


def test_the_sr_loss_trains_the_alignment():
    """The transformer is learnt through the SR loss alone: its heads get gradients, and once they move the
    guide is deformed (the output differs from the unaligned guide's)."""
    torch.manual_seed(0)
    net = CMSR(**TINY, upscale=2)
    lq, nir, gt = torch.rand(2, 3, 8, 10), torch.rand(2, 1, 8, 10), torch.rand(2, 3, 16, 20)
    F.mse_loss(net(lq, nir).sr, gt).backward()
    for head in (net.aligner.affine_head, net.aligner.tps_head, net.aligner.cpab_head):
        assert head.weight.grad.abs().max() > 0
    _perturb_aligner(net)
    unaligned = CMSR(**TINY, upscale=2, align=False)
    unaligned.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith('aligner.')})
    with torch.no_grad():
        assert (net(lq, nir).sr - unaligned(lq, nir).sr).abs().max() > 1e-4


def test_bad_inputs_raise_clear_errors():
    net = CMSR(**TINY, upscale=4, nir_scale=2)
    lq = torch.rand(1, 3, 5, 7)
    with pytest.raises(ValueError, match=r'nir_scale \(2\) x the VIS size'):
        net(lq, torch.rand(1, 1, 5, 7))
    with pytest.raises(ValueError, match=r'NIR input as \(n, 1, 2\*h, 2\*w\)'):
        net(lq, torch.rand(1, 3, 10, 14))
    with pytest.raises(ValueError, match='VIS input'):
        net(torch.rand(1, 1, 5, 7), torch.rand(1, 1, 10, 14))
    with pytest.raises(ValueError, match=r'nir_scale must be a positive integer that divides upscale \(4\)'):
        CMSR(**TINY, upscale=4, nir_scale=3)
    with pytest.raises(ValueError, match='upscale must be an integer >= 2'):
        CMSR(**TINY, upscale=1)
    with pytest.raises(ValueError, match='at least 2 convolutions'):
        CMSR(upscale=2, num_layers=1)
    with pytest.raises(ValueError, match='tps_grid 0 or >= 2'):
        CMSR(**{**TINY, 'tps_grid': 1}, upscale=2)


def test_the_kept_tps_basis_follows_the_grid_size():
    """The radial functions of the pixel grid are kept between calls: a new size (or dtype) computes its own."""
    torch.manual_seed(0)
    aligner = GuideAligner(4, tps_grid=4, cpab_cells=0)
    for size, dtype in [((9, 13), torch.float32), ((12, 7), torch.float32), ((9, 13), torch.float64),
                        ((9, 13), torch.float32)]:
        theta = aligner.affine_identity.to(dtype).expand(2, -1, -1)
        offsets = 0.05 * torch.randn(2, 16, 2, dtype=dtype)
        points = W.identity_grid(*size, theta).reshape(1, -1, 2).expand(2, -1, -1)
        expected = W.tps_displace(points, offsets, aligner.tps_ctrl, aligner.tps_inv).view(2, *size, 2)
        assert torch.allclose(aligner.grid(theta, offsets, None, None, size), expected, atol=1e-12), size


def test_a_basis_kept_under_inference_mode_does_not_break_training():
    """Inference (``basicsr infer``) then training at the same size: the kept basis must not be an inference
    tensor, which autograd refuses to save."""
    aligner = GuideAligner(4, tps_grid=4, cpab_cells=0)
    theta = aligner.affine_identity.unsqueeze(0)
    with torch.inference_mode():
        aligner.grid(theta, torch.zeros(1, 16, 2), None, None, (8, 8))
    offsets = torch.zeros(1, 16, 2, requires_grad=True)
    aligner.grid(theta, offsets, None, None, (8, 8)).sum().backward()
    assert offsets.grad is not None and offsets.grad.abs().sum() > 0


def test_a_window_no_smaller_than_the_input_changes_nothing():
    """Training patches no larger than ``window`` are one window: the network trains as without it."""
    torch.manual_seed(0)
    aligner = GuideAligner(4, loc_feat=4, loc_layers=2, tps_grid=4, cpab_cells=2)
    for head in (aligner.affine_head, aligner.tps_head, aligner.cpab_head):
        nn.init.normal_(head.weight, 0.0, 0.1)
    vis, guide = torch.rand(2, 3, 20, 24), torch.rand(2, 1, 20, 24)
    whole = aligner(vis, guide)
    aligner.window = 24
    assert torch.equal(aligner(vis, guide), whole)


def test_each_window_gets_the_translation_its_patch_would():
    """A map that shifts whatever it sees by k of its pixels (affine offset 2k/(window-1)) shifts a larger image,
    window by window, by k pixels (the last window overlapping its neighbour); as one map of the whole image it
    would shift it by k (W-1)/(window-1) pixels."""
    window, k, height, width = 8, 2, 8, 21  # windows at columns 0, 8 and 13 (the last aligned to the end)
    aligner = GuideAligner(4, loc_feat=4, loc_layers=1, tps_grid=0, cpab_cells=0, window=window)
    with torch.no_grad():
        aligner.affine_head.bias.copy_(torch.tensor([0.0, 0.0, 2.0 * k / (window - 1), 0.0, 0.0, 0.0]))
    guide = torch.arange(float(width)).expand(1, 1, height, width).contiguous()
    out = aligner(torch.rand(1, 3, height, width), guide)
    assert torch.allclose(out[..., :width - k], guide[..., k:], atol=1e-4)
    assert torch.allclose(out[..., width - k:], guide[..., -1:].expand(-1, -1, -1, k), atol=1e-4)
    aligner.window = 0
    whole = aligner(torch.rand(1, 3, height, width), guide)
    assert torch.allclose(whole[..., 0], torch.full((1, 1, height), k * (width - 1) / (window - 1)), atol=1e-4)


def test_the_window_reaches_the_aligner_and_is_checked():
    assert CMSR(num_feat=8, warp_window=96).aligner.window == 96
    with pytest.raises(ValueError, match='window'):
        CMSR(num_feat=8, warp_window=1)
