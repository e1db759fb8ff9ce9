"""CSPSR(vis_path='residual_block'): a VIS path of its own in every DMF, plus the fused features."""
import pytest
import torch

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.archs.dmf import DMF


def test_without_the_fused_features_it_is_exactly_the_vis_only_network():
    torch.manual_seed(0)
    net = CSPSR(num_feat=8, num_dmf=3, upscale=2, cvm='none', norm='none', vis_path='residual_block').eval()
    with torch.no_grad():
        for dmf in net.dmfs:
            dmf.conv_vis.weight.zero_()
            dmf.conv_vis.bias.zero_()
    vis_only = _vis_only_copy(net)
    lq, nir = torch.rand(2, 3, 10, 12), torch.rand(2, 1, 10, 12)
    with torch.no_grad():
        out, ref = net(lq, nir).sr, vis_only(lq, nir).sr
        torch.nn.init.normal_(net.dmfs[1].conv_vis.weight, std=0.1)  # the fused features enter again
        changed = net(lq, nir).sr
    assert torch.allclose(out, ref, atol=1e-6)
    assert (changed - ref).abs().max() > 1e-3


def test_the_fused_features_enter_through_a_1x1_convolution_added_to_the_vis_block():
    torch.manual_seed(1)
    dmf = DMF(num_feat=4, norm='none', vis_path='residual_block').eval()
    feat_vis, feat_nir = torch.rand(1, 4, 6, 7), torch.rand(1, 4, 6, 7)
    with torch.no_grad():
        vis, nir = dmf(feat_vis, feat_nir)
        fused_nir = dmf.dyconv(feat_vis, feat_nir)
        fused_vis = dmf.fusion(feat_vis, fused_nir)
        expected_vis = dmf.block_vis(feat_vis) + dmf.conv_vis(torch.nn.functional.leaky_relu(fused_vis, 0.1))
    assert dmf.conv_vis.kernel_size == (1, 1)
    assert torch.allclose(vis, expected_vis, atol=1e-6)
    assert torch.allclose(nir, feat_nir + dmf.conv_nir(torch.nn.functional.leaky_relu(fused_nir, 0.1)), atol=1e-6)


def test_unknown_vis_path_is_refused():
    with pytest.raises(ValueError, match="vis_path must be one of"):
        CSPSR(num_feat=4, num_dmf=1, cvm='none', vis_path='resblock')


def _vis_only_copy(net: CSPSR) -> CSPSR:
    """The single-branch VIS-only CSPSR with ``net``'s VIS weights (its DMFs' residual blocks as the body)."""
    vis_only = CSPSR(num_feat=net.conv_after_vis.in_channels, num_dmf=len(net.dmfs), upscale=net.upscale, cvm='none',
                     branches='vis').eval()
    with torch.no_grad():
        for dmf, block in zip(net.dmfs, vis_only.body):
            block.load_state_dict(dmf.block_vis.state_dict())
        for name in ('branch_vis', 'conv_after_vis', 'head_vis'):
            getattr(vis_only, name).load_state_dict(getattr(net, name).state_dict())
    return vis_only


def test_additive_starts_as_exactly_the_vis_only_network_and_learns_to_let_the_nir_in():
    torch.manual_seed(2)
    net = CSPSR(num_feat=8, num_dmf=2, upscale=2, cvm='none', norm='none', vis_path='additive')
    lq, nir, gt = torch.rand(2, 3, 10, 12), torch.rand(2, 1, 10, 12), torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        ref = _vis_only_copy(net)(lq, nir).sr
        out, other_nir = net.eval()(lq, nir).sr, net(lq, torch.rand_like(nir)).sr
    assert torch.allclose(out, ref, atol=1e-6)  # beta = 0: the NIR does not reach the VIS output yet
    assert torch.equal(out, other_nir)
    net.train()
    torch.nn.functional.mse_loss(net(lq, nir).sr, gt).backward()
    assert all(dmf.beta_vis.grad.abs().max() > 0 for dmf in net.dmfs)  # ... but its scales get a gradient
    with torch.no_grad():
        for dmf in net.dmfs:
            dmf.beta_vis.fill_(0.5)
        changed = net.eval()(lq, nir).sr
    assert (changed - ref).abs().max() > 1e-3


def test_additive_scales_the_fused_update_per_channel():
    torch.manual_seed(3)
    dmf = DMF(num_feat=4, norm='none', vis_path='additive').eval()
    feat_vis, feat_nir = torch.rand(1, 4, 6, 7), torch.rand(1, 4, 6, 7)
    beta = torch.tensor([0.0, 1.0, -2.0, 0.5]).view(1, 4, 1, 1)
    with torch.no_grad():
        dmf.beta_vis.copy_(beta)
        vis, _ = dmf(feat_vis, feat_nir)
        fused_vis = dmf.fusion(feat_vis, dmf.dyconv(feat_vis, feat_nir))
        expected = dmf.block_vis(feat_vis) + beta * dmf.conv_vis(torch.nn.functional.leaky_relu(fused_vis, 0.1))
    assert torch.allclose(vis, expected, atol=1e-6)
    assert torch.equal(vis[:, 0], dmf.block_vis(feat_vis)[:, 0])
