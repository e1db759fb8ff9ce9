"""The fused DMF forward pass (cspsr_arch/archs/fused_dmf.py) against the modules' formulas written out here."""
import pytest
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY

from cspsr_arch.archs.dmf import DMF


def reference_norm(norm, x):
    """BatchNorm (running or batch statistics), InstanceNorm (affine) or identity, written out."""
    if isinstance(norm, torch.nn.Identity):
        return x
    if isinstance(norm, torch.nn.BatchNorm2d) and not norm.training:
        mean, var = norm.running_mean.view(1, -1, 1, 1), norm.running_var.view(1, -1, 1, 1)
    else:
        dims = (0, 2, 3) if isinstance(norm, torch.nn.BatchNorm2d) else (2, 3)
        mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)


def reference_dmf(dmf, vis, nir):
    """DMF by its docstrings: unfold-based dynamic convolution, Eq. 2 of CSFT, the two convolutions."""
    k = dmf.dyconv.kernel_size
    n, c, h, w = nir.shape
    kernels = torch.softmax(F.conv2d(torch.cat([vis, nir], 1), dmf.dyconv.predict.weight, dmf.dyconv.predict.bias,
                                     padding=1), dim=1)
    patches = F.unfold(nir, k, padding=k // 2).view(n, c, k * k, h, w)
    nir_f = (patches * kernels.unsqueeze(1)).sum(2)
    csft = dmf.fusion
    w_s1 = torch.sigmoid(F.conv2d(vis, csft.spatial_vis.weight, csft.spatial_vis.bias, padding=1))
    vis_n, nir_n = reference_norm(csft.norm_vis, vis), reference_norm(csft.norm_nir, nir_f)
    cat = torch.cat([vis_n, nir_n], 1)
    pooled = cat if csft.channel_pool == 'normalised' else torch.cat([vis, nir_f], 1)
    w_c = torch.sigmoid(F.conv2d(pooled.mean((2, 3), keepdim=True), csft.channel.weight, csft.channel.bias))
    w_s2 = torch.sigmoid(F.conv2d(cat, csft.spatial_cat.weight, csft.spatial_cat.bias, padding=1))
    vis_f = nir_n * w_s1 * w_c[:, c:] + vis_n * w_s1 * w_s2 * w_c[:, :c]
    act = lambda x: F.leaky_relu(x, 0.1)  # noqa: E731
    return (vis + F.conv2d(act(vis_f), dmf.conv_vis.weight, dmf.conv_vis.bias, padding=1),
            nir + F.conv2d(act(nir_f), dmf.conv_nir.weight, dmf.conv_nir.bias))


def _dmf(norm, training, channel_pool='normalised'):
    torch.manual_seed(0)
    dmf = DMF(num_feat=6, kernel_size=3, norm=norm, channel_pool=channel_pool)
    with torch.no_grad():
        for p in dmf.parameters():  # away from the near-identity start, so every term matters
            p.normal_(std=0.3)
        if norm == 'batch':
            for bn in (dmf.fusion.norm_vis, dmf.fusion.norm_nir):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
    return dmf.train(training)


@pytest.mark.parametrize('norm, training, channel_pool', [
    ('batch', False, 'normalised'), ('batch', True, 'normalised'), ('none', False, 'normalised'),
    ('none', True, 'normalised'), ('instance', False, 'normalised'), ('batch', False, 'raw'), ('batch', True, 'raw')])
@pytest.mark.parametrize('channels_last', [False, True])
def test_fused_dmf_matches_the_formulas(norm, training, channel_pool, channels_last):
    dmf = _dmf(norm, training, channel_pool)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    dmf.to(memory_format=fmt)
    vis = torch.randn(2, 6, 7, 9).contiguous(memory_format=fmt).requires_grad_()
    nir = torch.randn(2, 6, 7, 9).contiguous(memory_format=fmt).requires_grad_()
    out_vis, out_nir = dmf(vis, nir)
    ref_vis, ref_nir = reference_dmf(dmf, vis, nir)
    assert torch.allclose(out_vis, ref_vis, atol=1e-5) and torch.allclose(out_nir, ref_nir, atol=1e-5)
    # gradients too: training goes through the same code
    grads = torch.autograd.grad((out_vis * 1.3 + out_nir).sum(), [vis, nir] + list(dmf.parameters()))
    ref_grads = torch.autograd.grad((ref_vis * 1.3 + ref_nir).sum(), [vis, nir] + list(dmf.parameters()))
    for got, want in zip(grads, ref_grads):
        assert torch.allclose(got, want, atol=1e-4)
    with torch.no_grad():  # the in-place path taken without autograd
        assert torch.allclose(dmf(vis, nir)[0], ref_vis, atol=1e-5)


def test_cspsr_with_fused_dmfs_matches_the_reference_network(monkeypatch):
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('CSPSR')(num_feat=8, num_dmf=2, upscale=2, max_disp=4).eval()
    with torch.no_grad():
        for dmf in net.dmfs:
            for p in dmf.parameters():
                p.normal_(std=0.2)
            dmf.fusion.norm_vis.running_var.fill_(2.0)
            dmf.fusion.norm_nir.running_mean.fill_(0.3)
    lq, nir = torch.rand(1, 3, 10, 12), torch.rand(1, 1, 10, 12)
    with torch.no_grad():
        fast = net(lq, nir)
        monkeypatch.setattr(DMF, 'forward', reference_dmf)
        ref = net(lq, nir)
    assert torch.allclose(fast.sr, ref.sr, atol=1e-5) and torch.allclose(fast.nir_sr, ref.nir_sr, atol=1e-5)
    assert (fast.sr - F.interpolate(lq, scale_factor=2, mode='bicubic')).abs().max() > 0.05  # the DMFs count


@pytest.mark.parametrize('norm', ['instance', 'batch'])
def test_channel_gates_see_the_image_only_when_pooled_before_the_normalisation(norm):
    """Instance-normalised maps have the affine shift as their mean whatever the image, and batch-normalised
    ones (training) have it as the batch mean: the paper's pooling gives every image the same channel gates
    (instance) or gates independent of a global change of the batch (batch); ``raw`` pooling does not."""
    from cspsr_arch.archs.csft import CSFT
    torch.manual_seed(0)
    gates = {}
    for pool in ('normalised', 'raw'):
        csft = CSFT(6, norm=norm, channel_pool=pool).train()
        with torch.no_grad():
            for p in csft.parameters():
                p.normal_(std=0.3)
        vis, nir = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7)
        vis[1] = vis[1] * 3 + 2  # the second image: other channel statistics
        _, _, w_c1, w_c2, _, _ = csft.weights(vis, nir)
        _, _, v_c1, v_c2, _, _ = csft.weights(vis * 2 + 1, nir * 2 + 1)  # the whole batch brighter
        gates[pool] = torch.cat([w_c1, w_c2], 1), torch.cat([v_c1, v_c2], 1)
    normalised, raw = gates['normalised'], gates['raw']
    assert torch.allclose(normalised[0], normalised[1], atol=1e-4)  # blind to the change
    assert (raw[0] - raw[1]).abs().max() > 0.05
    if norm == 'instance':
        assert torch.allclose(normalised[0][0], normalised[0][1], atol=1e-5)  # the same gates for both images
        assert (raw[0][0] - raw[0][1]).abs().max() > 0.05
    with pytest.raises(ValueError, match='channel_pool'):
        CSFT(6, channel_pool='after')


def test_padded_small_convolutions_give_the_same_outputs_and_flops_count_the_network_alone():
    from torch.utils.flop_counter import FlopCounterMode

    from cspsr_arch.archs.fused_dmf import CHANNEL_BLOCK, _conv, unpadded_convolutions
    torch.manual_seed(0)
    x = torch.randn(1, 6, 5, 7).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(9, 6, 3, 3), torch.randn(9)
    ref = F.conv2d(x, weight, bias, padding=1)
    counts = {}
    for padded in (True, False):
        counter = FlopCounterMode(display=False)
        with counter, (torch.enable_grad() if padded else unpadded_convolutions()):
            out = _conv(x, weight, bias, 1)
        assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)
        counts[padded] = counter.get_total_flops()
    outputs = 9 * 5 * 7
    assert counts[False] == 2 * 6 * 9 * outputs  # 2 FLOPs per multiply-add, 6 channels x 3x3 taps per output
    assert counts[True] == counts[False] * (9 + -9 % CHANNEL_BLOCK) // 9  # the zero filters are computed too


@pytest.mark.parametrize('kernel, channels_last', [(3, True), (3, False), (5, True)])
def test_single_output_convolution_as_tap_projection_and_shifted_sum(kernel, channels_last):
    """Two inputs, a bias, and per-tap biases: the convolution of the concatenation plus the convolution of a
    map of ones (zero padding: the border pixels get only the taps inside the image), values and gradients."""
    from cspsr_arch.archs.fused_dmf import single_output_conv
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    a = torch.randn(2, 3, 6, 8).contiguous(memory_format=fmt).requires_grad_()
    b = torch.randn(2, 5, 6, 8).contiguous(memory_format=fmt).requires_grad_()
    weight, bias = torch.randn(1, 8, kernel, kernel, requires_grad=True), torch.randn(1, requires_grad=True)
    tap_bias = torch.randn(kernel * kernel, requires_grad=True)
    pad = kernel // 2
    ref = (F.conv2d(torch.cat([a, b], 1), weight, bias, padding=pad)
           + F.conv2d(torch.ones(1, 1, 6, 8), tap_bias.view(1, 1, kernel, kernel), padding=pad))
    out = single_output_conv([(a, weight[:, :3]), (b, weight[:, 3:])], bias, tap_bias)
    assert out.shape == (2, 1, 6, 8) and torch.allclose(out, ref, atol=1e-5)
    # the corner of a 3x3 convolution sees 4 taps of the map of ones, the centre of the image all 9
    if kernel == 3:
        ones_only = single_output_conv([(torch.zeros(1, 2, 6, 8), torch.zeros(1, 2, 3, 3))], None, torch.ones(9))
        assert ones_only[0, 0, 0, 0] == 4 and ones_only[0, 0, 0, 3] == 6 and ones_only[0, 0, 3, 3] == 9
    grads = torch.autograd.grad((out * ref.detach()).sum(), [a, b, weight, bias, tap_bias])
    ref_grads = torch.autograd.grad((ref * ref.detach()).sum(), [a, b, weight, bias, tap_bias])
    for got, want in zip(grads, ref_grads):
        assert torch.allclose(got, want, atol=1e-4)
    # two outputs; even and non-square filters ("same" zero padding needs odd k x k)
    for bad in (torch.randn(2, 3, 3, 3), torch.randn(1, 3, 2, 2), torch.randn(1, 3, 3, 1)):
        with pytest.raises(ValueError, match='one output channel'):
            single_output_conv([(a, bad)])
