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
    w_c = torch.sigmoid(F.conv2d(cat.mean((2, 3), keepdim=True), csft.channel.weight, csft.channel.bias))
    w_s2 = torch.sigmoid(F.conv2d(cat, csft.spatial_cat.weight, csft.spatial_cat.bias, padding=1))
    vis_f = nir_n * w_s1 * w_c[:, c:] + vis_n * w_s1 * w_s2 * w_c[:, :c]
    act = lambda x: F.leaky_relu(x, 0.1)  # noqa: E731
    return (vis + F.conv2d(act(vis_f), dmf.conv_vis.weight, dmf.conv_vis.bias, padding=1),
            nir + F.conv2d(act(nir_f), dmf.conv_nir.weight, dmf.conv_nir.bias))


def _dmf(norm, training):
    torch.manual_seed(0)
    dmf = DMF(num_feat=6, kernel_size=3, norm=norm)
    with torch.no_grad():
        for p in dmf.parameters():  # away from the near-identity start, so every term matters
            p.normal_(std=0.3)
        if norm == 'batch':
            for bn in (dmf.fusion.norm_vis, dmf.fusion.norm_nir):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
    return dmf.train(training)


@pytest.mark.parametrize('norm, training', [('batch', False), ('batch', True), ('none', False), ('none', True),
                                            ('instance', False)])
@pytest.mark.parametrize('channels_last', [False, True])
def test_fused_dmf_matches_the_formulas(norm, training, channels_last):
    dmf = _dmf(norm, training)
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
