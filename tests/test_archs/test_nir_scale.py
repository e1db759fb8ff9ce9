"""CSPSR(nir_scale=f): the NIR at f x the LR size, warped at its resolution and pixel-unshuffled onto the LR grid."""
import pytest
import torch
import torch.nn.functional as F

from cspsr_arch.archs.cspsr_arch import CSPSR

TINY = {'num_feat': 8, 'num_dmf': 2}


def _captured(module: torch.nn.Module, pre: bool = False):
    """What ``module`` returns (or, with ``pre``, the positional inputs it receives) on every call."""
    seen = []
    if pre:
        module.register_forward_pre_hook(lambda mod, args: seen.append(args))
    else:
        module.register_forward_hook(lambda mod, args, out: seen.append(out))
    return seen


@pytest.mark.parametrize('upscale, nir_scale', [(4, 2), (4, 4), (2, 2), (3, 3)])
def test_the_fine_nir_is_warped_at_its_resolution_by_f_times_the_disparity(upscale, nir_scale):
    """A constant integer LR disparity d shifts the fine NIR by f*d fine pixels: NIR_l(y, X) = NIR_r(y, X - f*d)."""
    torch.manual_seed(0)
    net = CSPSR(**TINY, upscale=upscale, cvm='given', nir_scale=nir_scale).eval()
    seen = _captured(net.warp_nir)
    height, width, f = 5, 9, nir_scale
    right = torch.rand(2, 1, f * height, f * width)
    shifts = (2, 3)  # LR pixels, one per batch item
    disp = torch.stack([torch.full((1, height, width), float(d)) for d in shifts])
    with torch.no_grad():
        out = net(torch.rand(2, 3, height, width), right, disp)
    nir, valid = seen[0]
    assert nir.shape == right.shape and valid.shape == (2, 1, f * height, f * width)
    for n, d in enumerate(shifts):
        shift = f * d  # fine pixels
        assert valid[n, 0, :, :shift].sum() == 0 and valid[n, 0, :, shift:].min() == 1
        assert nir[n, 0, :, :shift].abs().max() < 1e-6
        assert torch.allclose(nir[n, 0, :, shift:], right[n, 0, :, :f * width - shift], atol=1e-6), n
    assert torch.equal(out.disp_l, disp)  # the returned disparity stays in LR pixels
    assert out.sr.shape == (2, 3, upscale * height, upscale * width) and out.nir_sr.shape == (2, 1, upscale * height,
                                                                                               upscale * width)


@pytest.mark.parametrize('branches', ['dual', 'concat'])
@pytest.mark.parametrize('f', [1, 2])
def test_the_fine_nir_and_its_mask_are_pixel_unshuffled_onto_the_lr_grid(branches, f):
    """Channel k*f*f + dy*f + dx at LR pixel (i, j) is the fine sample (f*i + dy, f*j + dx) of channel k (NIR, mask);
    with f = 1 the warped NIR and its mask as they are (the paper's model)."""
    height, width = 3, 4
    net = CSPSR(**TINY, upscale=4, cvm='given', nir_scale=f, branches=branches).eval()
    branch = net.branch_nir if branches == 'dual' else net.branch_vis
    seen = _captured(branch, pre=True)
    right = torch.arange(f * height * f * width, dtype=torch.float32).view(1, 1, f * height, f * width) / 100
    disp = torch.full((1, 1, height, width), 1.0)  # f fine pixels: the first f fine columns have no match
    lq = torch.rand(1, 3, height, width)
    with torch.no_grad():
        net(lq, right, disp)
    got = seen[0][0]
    if branches == 'concat':
        assert torch.equal(got[:, :3], lq)
        got = got[:, 3:]
    assert got.shape == (1, 2 * f * f, height, width)
    warped = torch.zeros(f * height, f * width)
    warped[:, f:] = right[0, 0, :, :-f]
    mask = torch.zeros(f * height, f * width)
    mask[:, f:] = 1
    for i in range(height):
        for j in range(width):
            for dy in range(f):
                for dx in range(f):
                    c = dy * f + dx
                    assert abs(got[0, c, i, j] - warped[f * i + dy, f * j + dx]) < 1e-6, (c, i, j)
                    assert got[0, f * f + c, i, j] == mask[f * i + dy, f * j + dx], (c, i, j)


@pytest.mark.parametrize('upscale, nir_scale', [(4, 2), (4, 4), (2, 2), (3, 3)])
def test_the_nir_global_skip_is_the_bicubic_upsampling_of_the_warped_fine_nir(upscale, nir_scale):
    """With zero heads, NIR_SR is bicubic(warped NIR, upscale / f) (the warped NIR itself when f = upscale)."""
    torch.manual_seed(0)
    net = CSPSR(**TINY, upscale=upscale, cvm='given', nir_scale=nir_scale).eval()
    seen = _captured(net.warp_nir)
    with torch.no_grad():
        for head in (net.head_nir, net.head_vis):
            head[0].weight.zero_()
            head[0].bias.zero_()
        lq, right = torch.rand(1, 3, 6, 7), torch.rand(1, 1, 6 * nir_scale, 7 * nir_scale)
        out = net(lq, right, torch.full((1, 1, 6, 7), 1.5))
    warped = seen[0][0]
    assert torch.allclose(out.sr, F.interpolate(lq, scale_factor=upscale, mode='bicubic', align_corners=False),
                          atol=1e-6)
    if nir_scale == upscale:
        assert torch.equal(out.nir_sr, warped)
    else:
        want = F.interpolate(warped, scale_factor=upscale // nir_scale, mode='bicubic', align_corners=False)
        assert torch.allclose(out.nir_sr, want, atol=1e-6)
        bilinear = F.interpolate(warped, scale_factor=upscale // nir_scale, mode='bilinear')
        assert (out.nir_sr - bilinear).abs().max() > 1e-3


@pytest.mark.parametrize('kwargs', [{}, {'cvm': 'given'}, {'cvm': 'none', 'branches': 'concat'},
                                    {'cvm': 'none', 'branches': 'vis'}])
def test_nir_scale_1_is_the_network_without_the_argument(kwargs):
    torch.manual_seed(0)
    plain = CSPSR(**TINY, upscale=4, max_disp=4, **kwargs).eval()
    torch.manual_seed(0)
    explicit = CSPSR(**TINY, upscale=4, max_disp=4, nir_scale=1, **kwargs).eval()
    a, b = plain.state_dict(), explicit.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    lq, nir, disp = torch.rand(2, 3, 9, 10), torch.rand(2, 1, 9, 10), torch.full((2, 1, 9, 10), 2.0)
    with torch.no_grad():
        for x, y in zip(plain(lq, nir, disp), explicit(lq, nir, disp)):
            assert (x is None and y is None) or torch.equal(x, y)


def test_only_the_first_nir_convolution_grows_with_nir_scale():
    shapes = {f: {k: tuple(v.shape) for k, v in CSPSR(**TINY, upscale=4, nir_scale=f).state_dict().items()}
              for f in (1, 2, 4)}
    assert list(shapes[1]) == list(shapes[2]) == list(shapes[4])
    for f in (2, 4):
        assert {k for k in shapes[1] if shapes[1][k] != shapes[f][k]} == {'branch_nir.0.weight'}
        assert shapes[f]['branch_nir.0.weight'] == (8, 2 * f * f, 3, 3)
    concat = CSPSR(**TINY, upscale=4, nir_scale=2, branches='concat', cvm='none')
    assert concat.branch_vis[0].weight.shape == (8, 3 + 2 * 4, 3, 3)


@pytest.mark.parametrize('nir_scale', [3, 0, 8, 2.0, True, '2'])
def test_bad_nir_scale_is_refused(nir_scale):
    with pytest.raises(ValueError, match=r'nir_scale must be an integer that divides upscale \(4\), one of '
                       r'\[1, 2, 4\]'):
        CSPSR(**TINY, upscale=4, nir_scale=nir_scale)


def test_vis_only_branch_takes_nir_scale_1_only():
    with pytest.raises(ValueError, match="branches='vis' reads no NIR image, so nir_scale must be 1"):
        CSPSR(**TINY, upscale=4, cvm='none', branches='vis', nir_scale=2)


def test_a_nir_of_the_wrong_size_names_both_sizes_and_the_expected_one():
    net = CSPSR(**TINY, upscale=4, nir_scale=2)
    for nir in (torch.rand(1, 1, 8, 10), torch.rand(1, 1, 16, 21)):
        with pytest.raises(ValueError) as err:
            net(torch.rand(1, 3, 8, 10), nir)
        message = str(err.value)
        assert '(1, 3, 8, 10)' in message and str(tuple(nir.shape)) in message
        assert 'nir_scale=2' in message and 'nir_scale times the VIS size, 16x20 (HxW)' in message
    with pytest.raises(ValueError, match=r'NIR input as \(n, 1, 2\*h, 2\*w\)'):
        net(torch.rand(1, 3, 8, 10), torch.rand(1, 3, 16, 20))


def test_the_learned_cvm_matches_on_the_antialiased_bicubic_reduction_of_the_nir():
    torch.manual_seed(0)
    net = CSPSR(**TINY, upscale=4, nir_scale=4, max_disp=4).eval()
    seen = _captured(net.cvm_net, pre=True)
    lq, nir = torch.rand(1, 3, 6, 9), torch.rand(1, 1, 24, 36)
    with torch.no_grad():
        out = net(lq, nir)
    vis_in, nir_in = seen[0]
    assert torch.equal(vis_in, lq)
    assert torch.allclose(nir_in, F.interpolate(nir, size=(6, 9), mode='bicubic', antialias=True,
                                                align_corners=False), atol=1e-6)
    assert out.disp_l.shape == out.disp_r.shape == (1, 1, 6, 9)


def test_gradients_reach_the_learned_cvm_through_the_fine_warp():
    """NIR_SR depends on the CVM only through the disparity of the warp at the NIR's resolution."""
    torch.manual_seed(0)
    net = CSPSR(**TINY, upscale=4, nir_scale=2, max_disp=4)
    with torch.no_grad():  # a textured, non-constant disparity
        for p in net.cvm_net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    seen = _captured(net.warp_nir, pre=True)
    lq, nir = torch.rand(2, 3, 8, 12), torch.rand(2, 1, 16, 24)
    out = net(lq, nir)
    fine_disp = seen[0][1]
    assert fine_disp.shape == (2, 1, 16, 24) and fine_disp.requires_grad
    out.nir_sr.square().mean().backward()
    grads = [p.grad for p in net.cvm_net.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_dynamo_traces_one_graph_for_every_size():
    """torch.compile (here dynamo with the eager backend: no C++ build) sees no graph break and reuses the graph."""
    from cspsr_arch.engine.compile import compile_network
    torch._dynamo.reset()
    graphs = []

    def counting(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch.manual_seed(0)
    net = CSPSR(num_feat=4, num_dmf=1, upscale=4, nir_scale=2, max_disp=4).eval()
    compiled = compile_network(net, backend=counting)
    with torch.no_grad():
        for size in [(9, 13), (12, 10), (7, 16)]:
            lq, nir = torch.rand(1, 3, *size), torch.rand(1, 1, 2 * size[0], 2 * size[1])
            out, ref = compiled(lq, nir), net(lq, nir)
            assert torch.allclose(out.sr, ref.sr, atol=1e-5) and torch.allclose(out.nir_sr, ref.nir_sr, atol=1e-5)
    assert len(graphs) == 1
    torch._dynamo.reset()
