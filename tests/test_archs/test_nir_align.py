"""CSPSR(nir_align=True): CMSR's learned alignment of the cross-view-matched NIR, by value."""
import pytest
import torch
import torch.nn.functional as F

from cspsr_arch.archs.cspsr_arch import CSPSR

TINY = {'num_feat': 8, 'num_dmf': 2, 'max_disp': 8}


def _pair(seed: int = 0, nir_scale: int = 4):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 8, 12, generator=gen), torch.rand(2, 1, 8 * nir_scale, 12 * nir_scale, generator=gen)


def test_the_alignment_starts_at_the_identity():
    """At initialisation the aligned network is the one without the alignment (same shared weights)."""
    torch.manual_seed(0)
    aligned = CSPSR(**TINY, nir_scale=4, nir_align=True, warp_window=16).eval()
    plain = CSPSR(**TINY, nir_scale=4).eval()
    extra = plain.load_state_dict(aligned.state_dict(), strict=False).unexpected_keys
    assert extra and all(k.startswith('nir_aligner.') for k in extra)
    lq, nir = _pair()
    with torch.no_grad():
        a, b = aligned(lq, nir), plain(lq, nir)
    assert torch.allclose(a.sr, b.sr, atol=1e-5) and torch.allclose(a.nir_sr, b.nir_sr, atol=1e-5)


@pytest.mark.parametrize('nir_scale', [1, 4])
def test_a_known_affine_shift_moves_the_nir_and_its_mask_by_that_many_pixels(nir_scale):
    """Affine offset t (normalised x) samples NIR(x + t): on a ramp in x the value rises by the shift in pixels."""
    net = CSPSR(**TINY, nir_scale=nir_scale, nir_align=True).eval()
    width, shift = 12 * nir_scale, 2.0
    nir = torch.arange(width, dtype=torch.float32).expand(1, 1, 8 * nir_scale, width).clone()
    valid = torch.ones_like(nir)
    valid[..., :3] = 0  # what the cross-view warp left invalid
    with torch.no_grad():
        net.nir_aligner.affine_head.bias[2] = shift * 2 / (width - 1)
        out, mask = net._align_nir(torch.rand(1, 3, 8, 12), nir, valid)
    assert torch.allclose(out[..., :width - 2], nir[..., 2:], atol=1e-4)
    assert torch.allclose(out[..., width - 2:], torch.full_like(out[..., width - 2:], width - 1.0))  # border clamp
    expected = valid.roll(-2, dims=-1)
    expected[..., -2:] = 1
    assert torch.allclose(mask, expected, atol=1e-4)  # the invalid columns moved with the NIR


def test_the_nir_branch_sees_the_aligned_nir():
    """A moved alignment changes what the NIR branch receives and the output; the VIS branch's input is unchanged."""
    torch.manual_seed(0)
    net = CSPSR(**TINY, nir_scale=4, nir_align=True, warp_window=16).eval()
    seen = []
    net.branch_nir.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    lq, nir = _pair(1)
    with torch.no_grad():
        before = net(lq, nir).sr
        net.nir_aligner.affine_head.bias[2] = 0.1
        after = net(lq, nir).sr
    assert (seen[0] - seen[1]).abs().max() > 0.05 and (before - after).abs().max() > 1e-4


def test_the_window_is_given_in_output_pixels():
    assert CSPSR(**TINY, nir_scale=4, nir_align=True, warp_window=96).nir_aligner.window == 96
    assert CSPSR(**TINY, nir_scale=2, nir_align=True, warp_window=96).nir_aligner.window == 48
    assert CSPSR(**TINY, nir_align=True, warp_window=96).nir_aligner.window == 24
    assert CSPSR(**TINY).nir_aligner is None


@pytest.mark.parametrize('options', [{'warp_window': 96}, {'nir_align': True, 'warp_window': 98},
                                     {'nir_align': True, 'branches': 'vis', 'cvm': 'none'}])
def test_bad_alignment_options_are_refused(options):
    with pytest.raises(ValueError, match='warp_window'):
        CSPSR(**TINY, **options)


def test_the_aligner_learns():
    """One optimiser step on a pair whose NIR is the VIS's grey shifted: the alignment heads move off zero."""
    torch.manual_seed(0)
    net = CSPSR(**TINY, nir_scale=4, nir_align=True, warp_window=32, cvm='none')
    gt = torch.rand(2, 3, 32, 32)
    lq = F.interpolate(gt, scale_factor=0.25, mode='bicubic', align_corners=False)
    nir = torch.roll(gt.mean(1, keepdim=True), 1, dims=-1)
    F.mse_loss(net(lq, nir).sr, gt).backward()
    heads = net.nir_aligner
    assert all(h.bias.grad.abs().max() > 0 for h in (heads.affine_head, heads.tps_head, heads.cpab_head))
