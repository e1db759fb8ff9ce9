"""NAFSSR (Chu et al., CVPRW 2022) as a NIR-guided comparison network: shapes, paper sizes, SCAM by value."""
import pytest
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY

from cspsr_arch.archs.guided import GuidedSR
from cspsr_arch.archs.nafssr_arch import NAFSSR, PUBLISHED_PARAMS_X4, SCAM, SIZES, DropPathPair, NAFBlock

TINY = {'width': 8, 'num_blocks': 2}


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _randomise_scales(net: torch.nn.Module, seed: int = 1) -> None:
    """Random values for every zero-initialised residual scale (NAFBlock beta/gamma, SCAM gamma_l/gamma_r), so
    that every block and every cross-attention acts; at initialisation each of them is the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.rsplit('.', 1)[-1] in ('beta', 'gamma', 'gamma_l', 'gamma_r'):
                p.copy_(torch.randn(p.shape, generator=gen))


def test_registered_with_the_guided_interface():
    assert ARCH_REGISTRY.get('NAFSSR') is NAFSSR and issubclass(NAFSSR, GuidedSR)
    net = NAFSSR(**TINY)
    assert net.row_context is True and net.cvm == 'none' and net.branches == 'single'
    assert (net.upscale, net.nir_scale, net.num_in_ch, net.num_nir_ch) == (4, 1, 3, 1)
    with torch.device('meta'):
        default = NAFSSR()
    assert (default.width, default.num_blocks) == SIZES['S']  # the default size


@pytest.mark.parametrize('upscale, height, width', [(2, 8, 12), (4, 8, 12), (4, 13, 19), (2, 13, 19)])
@pytest.mark.parametrize('nir_intro', ['separate', 'repeat'])
def test_output_shape_and_fields(upscale, height, width, nir_intro):
    torch.manual_seed(0)
    net = NAFSSR(**TINY, upscale=upscale, nir_intro=nir_intro).eval()
    _randomise_scales(net)
    with torch.no_grad():
        out = net(torch.rand(2, 3, height, width), torch.rand(2, 1, height, width))
    assert out.sr.shape == (2, 3, upscale * height, upscale * width)
    assert out.nir_sr is None and out.disp_r is None
    assert out.disp_l.shape == (2, 1, height, width) and not out.disp_l.any()
    assert torch.isfinite(out.sr).all()


@pytest.mark.parametrize('skip', ['bilinear', 'bicubic', 'none'])
def test_the_global_skip_is_the_upsampled_vis(skip):
    """With a zero reconstruction convolution, I_SR is the skip alone: bilinear (the paper's), bicubic or zero."""
    torch.manual_seed(0)
    net = NAFSSR(**TINY, upscale=4, skip=skip).eval()
    _randomise_scales(net)
    with torch.no_grad():
        net.head[0].weight.zero_()
        net.head[0].bias.zero_()
        lq = torch.rand(1, 3, 7, 9)
        sr = net(lq, torch.rand(1, 1, 7, 9)).sr
    if skip == 'none':
        assert not sr.any()
    else:
        want = F.interpolate(lq, scale_factor=4, mode=skip, align_corners=False)
        assert torch.allclose(sr, want, atol=1e-5)


def test_paper_size_parameter_counts():
    """T/S/B/L at x4 against the published 0.46 / 1.56 / 6.80 / 23.83 M (NAFNet release, docs/StereoSR.md).

    Ours differ by exactly +10 C - (C**2 + 2 C): the NIR's own intro convolution (1 -> C, 3x3) and the right
    half of the last SCAM (value_l, gamma_r), which is not built because nothing reads the right view after the
    last block. Without those two differences the counts round to the published ones. Built on the meta device:
    shapes only, no memory, no initialisation (L has 23.8 M parameters).
    """
    for size, published in PUBLISHED_PARAMS_X4.items():
        c = SIZES[size][0]
        with torch.device('meta'):
            ours = NAFSSR(upscale=4, size=size)
        assert abs(_count(ours) / 1e6 - published) / published < 0.01, (size, _count(ours))
        assert _count(ours.intro_nir) == 10 * c
        assert round((_count(ours) - 10 * c + c * c + 2 * c) / 1e6, 2) == published, size
    with torch.device('meta'):  # x2: the head shrinks; NAFSSR-L x2 is published with 23.79 M
        large_x2 = NAFSSR(upscale=2, size='L')
    assert round((_count(large_x2) - 10 * 128 + 128 * 128 + 256) / 1e6, 2) == 23.79


def test_the_cpu_benchmark_configuration_has_about_0_2_m_parameters():
    assert _count(NAFSSR(width=32, num_blocks=16)) == 216240


def test_nafblock_by_its_formula():
    """NAFNet's block written out with functional calls: y = x + beta * W3 (SG(DW(W1 LN(x))) * SCA), SCA the 1x1
    map of the global average; out = y + gamma * W5 SG(W4 LN(y)); SG halves the channels by a product."""
    torch.manual_seed(0)
    blk = NAFBlock(4)
    _randomise_scales(blk)
    x = torch.randn(2, 4, 5, 7)

    def ln(t, norm):
        t = (t - t.mean(1, keepdim=True)) / (t.var(1, unbiased=False, keepdim=True) + 1e-6).sqrt()
        return t * norm.weight[:, None, None] + norm.bias[:, None, None]

    def sg(t):
        return t[:, :t.size(1) // 2] * t[:, t.size(1) // 2:]

    with torch.no_grad():
        t = F.conv2d(F.conv2d(ln(x, blk.norm1), blk.conv1.weight, blk.conv1.bias), blk.conv2.weight,
                     blk.conv2.bias, padding=1, groups=8)
        t = sg(t)
        att = F.conv2d(t.mean((2, 3), keepdim=True), blk.sca[1].weight, blk.sca[1].bias)
        y = x + blk.beta * F.conv2d(t * att, blk.conv3.weight, blk.conv3.bias)
        want = y + blk.gamma * F.conv2d(sg(F.conv2d(ln(y, blk.norm2), blk.conv4.weight, blk.conv4.bias)),
                                        blk.conv5.weight, blk.conv5.bias)
        assert torch.allclose(blk(x), want, atol=1e-5)
        blk.beta.zero_()
        blk.gamma.zero_()
        assert torch.equal(blk(x), x)  # NAFNet's zero-initialised scales: the block starts as the identity


def _scam(channels: int = 6, seed: int = 0) -> SCAM:
    torch.manual_seed(seed)
    scam = SCAM(channels)
    _randomise_scales(scam, seed + 1)
    return scam


def test_scam_with_zero_queries_adds_the_row_mean_of_the_other_view():
    """Zero W1 (weights and biases): every logit is 0, the attention uniform over the row, so with W2 = identity
    out_L = X_L + gamma_L * (mean of X_R over its row), and the same for the right view. h != w, so attention
    over columns would give another answer."""
    scam = _scam()
    with torch.no_grad():
        for conv in (scam.query_l, scam.query_r):
            conv.weight.zero_()
            conv.bias.zero_()
        for conv in (scam.value_l, scam.value_r):
            conv.weight.copy_(torch.eye(6)[:, :, None, None])
            conv.bias.zero_()
        x_l, x_r = torch.randn(2, 6, 3, 5), torch.randn(2, 6, 3, 5)
        out_l, out_r = scam(x_l, x_r)
        att = scam.attention(x_l, x_r)
    assert torch.allclose(att, torch.full((2, 3, 5, 5), 1 / 5))
    assert torch.allclose(out_l, x_l + scam.gamma_l * x_r.mean(dim=3, keepdim=True), atol=1e-6)
    assert torch.allclose(out_r, x_r + scam.gamma_r * x_l.mean(dim=3, keepdim=True), atol=1e-6)


def test_scam_attention_is_a_row_wise_softmax_of_the_scaled_query_key_products():
    """Against a by-hand loop: logit(y, x, x') = sum_c Q_L[c, y, x] K_R[c, y, x'] / sqrt(C), K_R = W1_R LN(X_R);
    each row of the map a distribution over the right row."""
    scam = _scam(channels=4)
    x_l, x_r = torch.randn(1, 4, 2, 3), torch.randn(1, 4, 2, 3) * 3  # a peaked attention: the softmax's axis shows
    with torch.no_grad():
        att = scam.attention(x_l, x_r)
        q, k = scam.query_l(scam.norm_l(x_l))[0], scam.query_r(scam.norm_r(x_r))[0]
    assert att.shape == (1, 2, 3, 3) and (att >= 0).all()
    assert torch.allclose(att.sum(-1), torch.ones(1, 2, 3), atol=1e-6)
    for y in range(2):
        for x in range(3):
            logits = torch.tensor([float((q[:, y, x] * k[:, y, xr]).sum()) / 2 for xr in range(3)])
            assert torch.allclose(att[0, y, x], torch.softmax(logits, 0), atol=1e-5), (y, x)
    # the outputs: F_R->L = A V_R and F_L->R = softmax(A's logits transposed) V_L, row by row
    with torch.no_grad():
        out_l, out_r = scam(x_l, x_r)
        v_l, v_r = scam.value_l(x_l)[0], scam.value_r(x_r)[0]
    for y in range(2):
        logits = q[:, y].t() @ k[:, y] / 2  # (w_l, w_r)
        r2l = torch.softmax(logits, 1) @ v_r[:, y].t()  # (w_l, C)
        l2r = torch.softmax(logits.t(), 1) @ v_l[:, y].t()  # (w_r, C)
        assert torch.allclose(out_l[0, :, y], x_l[0, :, y] + scam.gamma_l[0, :, 0] * r2l.t(), atol=1e-5), y
        assert torch.allclose(out_r[0, :, y], x_r[0, :, y] + scam.gamma_r[0, :, 0] * l2r.t(), atol=1e-5), y
    # layer norm over the channels of each pixel, as NAFNet's LayerNorm2d (eps 1e-6)
    ln = scam.norm_l(x_l)
    manual = (x_l - x_l.mean(1, keepdim=True)) / (x_l.var(1, unbiased=False, keepdim=True) + 1e-6).sqrt()
    assert torch.allclose(ln, manual * scam.norm_l.weight[:, None, None] + scam.norm_l.bias[:, None, None],
                          atol=1e-5)


def test_scam_mixes_only_within_rows_and_is_the_identity_with_zero_scales():
    scam = _scam()
    x_l, x_r = torch.randn(1, 6, 4, 5), torch.randn(1, 6, 4, 5)
    other = x_r.clone()
    other[:, :, 2] += 1  # change row 2 of the right view only
    with torch.no_grad():
        change = (scam(x_l, x_r)[0] - scam(x_l, other)[0]).abs().amax(dim=(0, 1, 3))
        assert change[2] > 1e-3 and change[[0, 1, 3]].max() == 0
        scam.gamma_l.zero_()
        scam.gamma_r.zero_()
        out_l, out_r = scam(x_l, x_r)
    assert torch.equal(out_l, x_l) and torch.equal(out_r, x_r)


def test_the_last_scam_updates_only_the_left_view():
    torch.manual_seed(0)
    net = NAFSSR(**TINY)
    first, last = net.body[0].scam, net.body[-1].scam
    assert first.update_right and not last.update_right
    assert not hasattr(last, 'value_l') and not hasattr(last, 'gamma_r')
    full = SCAM(8)
    full.load_state_dict(last.state_dict(), strict=False)
    _randomise_scales(full)
    with torch.no_grad():
        last.gamma_l.copy_(full.gamma_l)
        x_l, x_r = torch.randn(1, 8, 3, 4), torch.randn(1, 8, 3, 4)
        out_l, out_r = last(x_l, x_r)
    assert torch.allclose(out_l, full(x_l, x_r)[0]) and out_r is x_r


def test_the_nir_changes_the_output_once_the_cross_attention_scales_are_non_zero():
    """NAFSSR initialises gamma_L to zero (SCAM starts as the identity), so at initialisation the left view
    reads nothing of the right one: the NIR cannot change I_SR. With gamma_L non-zero it must."""
    torch.manual_seed(0)
    net = NAFSSR(**TINY, upscale=2).eval()
    lq, nir = torch.rand(1, 3, 8, 10), torch.rand(1, 1, 8, 10)
    other = nir.clone()
    other[..., 2:6, 3:8] = 1 - other[..., 2:6, 3:8]
    with torch.no_grad():
        assert torch.equal(net(lq, nir).sr, net(lq, other).sr)
        for block in net.body:
            block.scam.gamma_l.fill_(0.5)
        change = (net(lq, nir).sr - net(lq, other).sr).abs()
    assert change.max() > 1e-3


def test_with_zero_cross_attention_scales_the_vis_goes_through_a_single_view_nafnet():
    """gamma_L = gamma_R = 0: no SCAM passes anything, so I_SR is NAFNet-SR of the VIS alone (intro, the shared
    NAFBlocks, head, bilinear skip), whatever the NIR; the blocks act (random residual scales)."""
    torch.manual_seed(0)
    net = NAFSSR(width=8, num_blocks=3, upscale=2).eval()
    _randomise_scales(net)
    lq = torch.rand(1, 3, 6, 9)
    with torch.no_grad():
        for block in net.body:
            block.scam.gamma_l.zero_()
            if block.scam.update_right:
                block.scam.gamma_r.zero_()
        feat = net.intro(lq)
        for block in net.body:
            feat = block.block(feat)
        want = F.pixel_shuffle(net.head[0](feat), 2) + F.interpolate(lq, scale_factor=2, mode='bilinear')
        assert torch.allclose(net(lq, torch.rand(1, 1, 6, 9)).sr, want, atol=1e-5)


def test_strict_checkpoint_round_trip():
    torch.manual_seed(0)
    net = NAFSSR(**TINY, upscale=2).eval()
    _randomise_scales(net)
    torch.manual_seed(1)
    copy = NAFSSR(**TINY, upscale=2).eval()
    lq, nir = torch.rand(1, 3, 6, 9), torch.rand(1, 1, 6, 9)
    with torch.no_grad():
        want = net(lq, nir).sr
        assert not torch.allclose(copy(lq, nir).sr, want)
        copy.load_state_dict(net.state_dict(), strict=True)
        assert torch.equal(copy(lq, nir).sr, want)


def test_stochastic_depth_drops_whole_blocks_per_sample_and_every_parameter_gets_a_gradient():
    """Training: each sample either skips the block (output = input) or takes x + (f(x) - x) / (1 - p);
    evaluation: the block as it is. Every parameter is in the graph (DistributedDataParallel needs it)."""
    torch.manual_seed(0)
    block = DropPathPair(4, drop_rate=0.5)
    _randomise_scales(block)
    x_l, x_r = torch.randn(1, 4, 3, 5).repeat(16, 1, 1, 1), torch.randn(1, 4, 3, 5).repeat(16, 1, 1, 1)
    with torch.no_grad():
        f_l, f_r = block.eval()(x_l, x_r)
        out_l, out_r = block.train()(x_l, x_r)
    dropped = (out_l == x_l).flatten(1).all(1)
    kept_l, kept_r = x_l + 2 * (f_l - x_l), x_r + 2 * (f_r - x_r)
    assert 0 < dropped.sum() < 16
    assert torch.equal(out_r[dropped], x_r[dropped])
    assert torch.allclose(out_l[~dropped], kept_l[~dropped], atol=1e-5)
    assert torch.allclose(out_r[~dropped], kept_r[~dropped], atol=1e-5)
    net = NAFSSR(**TINY, drop_path_rate=0.2).train()
    net(torch.rand(2, 3, 5, 6), torch.rand(2, 1, 5, 6)).sr.mean().backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize('nir_shape, match', [((1, 1, 6, 9), 'differ in batch or size'),
                                              ((1, 1, 12, 18), 'differ in batch or size'),
                                              ((2, 1, 6, 8), 'differ in batch or size'),
                                              ((1, 3, 6, 8), r'NIR input as \(n, 1, h, w\)')])
def test_bad_nir_inputs_raise(nir_shape, match):
    net = NAFSSR(**TINY)
    with pytest.raises(ValueError, match=match):
        net(torch.rand(1, 3, 6, 8), torch.rand(*nir_shape))


@pytest.mark.parametrize('kwargs, match', [({'nir_scale': 2}, 'NIR at the LR size'),
                                           ({'nir_scale': 4}, 'NIR at the LR size'),
                                           ({'nir_scale': 3}, 'must be a positive integer that divides'),
                                           ({'size': 'M'}, 'size must be one of'),
                                           ({'nir_intro': 'shared'}, 'nir_intro must be one of'),
                                           ({'skip': 'nearest'}, 'skip must be one of'),
                                           ({'drop_path_rate': 1.0}, r'drop_path_rate must be in \[0, 1\)'),
                                           ({'upscale': 0}, 'upscale must be a positive integer'),
                                           ({'nir_intro': 'repeat', 'num_nir_ch': 2}, 'must divide num_in_ch')])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NAFSSR(**TINY, **kwargs)
