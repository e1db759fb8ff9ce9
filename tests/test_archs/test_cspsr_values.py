"""CSPSR by value: the NIR is warped exactly onto the VIS view inside the network, and it is used."""
import pytest
import torch
import torch.nn.functional as F

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.archs.warp import warp_to_left

TINY = {'num_feat': 8, 'num_dmf': 2, 'upscale': 2}


def _captured_warp(net: CSPSR):
    """Record what ``net.warp_nir`` returns (the warped NIR and its validity mask) on every call."""
    seen = []
    net.warp_nir.register_forward_hook(lambda module, args, out: seen.append(out))
    return seen


def _row_shift_pair(height: int = 6, width: int = 12, seed: int = 0):
    """A right NIR view and a left disparity that differs per row (1, 2, 3, ... LR pixels)."""
    torch.manual_seed(seed)
    right = torch.rand(1, 1, height, width)
    disp = torch.arange(1.0, height + 1).view(1, 1, height, 1).expand(1, 1, height, width).contiguous()
    return right, disp


def test_given_disparity_warps_the_nir_onto_the_vis_view():
    right, disp = _row_shift_pair()
    net = CSPSR(**TINY, cvm='given').eval()
    seen = _captured_warp(net)
    with torch.no_grad():
        net(torch.rand(1, 3, 6, 12), right, disp)
    nir, valid = seen[0]
    for y in range(6):
        shift = y + 1  # NIR_l(y, x) = NIR_r(y, x - shift): the first `shift` columns have no match
        assert valid[0, 0, y, :shift].sum() == 0 and valid[0, 0, y, shift:].min() == 1
        assert torch.allclose(nir[0, 0, y, shift:], right[0, 0, y, :12 - shift], atol=1e-6), y
        assert nir[0, 0, y, :shift].abs().max() == 0


def test_learned_disparity_warps_by_the_left_disparity_it_returns():
    torch.manual_seed(0)
    net = CSPSR(**TINY, max_disp=4).eval()
    with torch.no_grad():  # a textured, non-constant disparity: left and right disparities differ
        for p in net.cvm_net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    seen = _captured_warp(net)
    lq, nir = torch.rand(1, 3, 8, 16), torch.rand(1, 1, 8, 16)
    with torch.no_grad():
        out = net(lq, nir)
    assert (out.disp_l - out.disp_r).abs().max() > 0.05
    expected, expected_valid = warp_to_left(nir, out.disp_l)
    assert torch.allclose(seen[0][0], expected, atol=1e-6) and torch.equal(seen[0][1], expected_valid)


@pytest.mark.parametrize('branches, cvm, uses_nir', [('dual', 'given', True), ('concat', 'given', True),
                                                     ('vis', 'none', False)])
def test_the_output_depends_on_the_nir_exactly_when_the_variant_reads_it(branches, cvm, uses_nir):
    torch.manual_seed(0)
    net = CSPSR(**TINY, cvm=cvm, branches=branches).eval()
    lq, nir, disp = torch.rand(1, 3, 8, 10), torch.rand(1, 1, 8, 10), torch.full((1, 1, 8, 10), 2.0)
    other = nir.clone()
    other[..., 2:6, 4:8] = 1 - other[..., 2:6, 4:8]
    with torch.no_grad():
        change = (net(lq, nir, disp).sr - net(lq, other, disp).sr).abs()
    if uses_nir:
        assert change.max() > 1e-3
    else:
        assert change.max() == 0


def test_global_skips_add_the_bicubic_vis_and_warped_nir():
    """With zero heads (no residual), I_SR is bicubic(VIS) and NIR_SR is bicubic(warped NIR): the global skips."""
    torch.manual_seed(0)
    net = CSPSR(**TINY, cvm='given').eval()
    with torch.no_grad():
        for head in (net.head_nir, net.head_vis):
            head[0].weight.zero_()
            head[0].bias.zero_()
        right, disp = _row_shift_pair(6, 12)
        lq = torch.rand(1, 3, 6, 12)
        out = net(lq, right, disp)
    assert torch.allclose(out.sr, F.interpolate(lq, scale_factor=2, mode='bicubic', align_corners=False), atol=1e-6)
    warped, _ = warp_to_left(right, disp)
    assert torch.allclose(out.nir_sr, F.interpolate(warped, scale_factor=2, mode='bicubic', align_corners=False),
                          atol=1e-6)
