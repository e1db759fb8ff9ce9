"""MASASR (Lu et al., MASA-SR, CVPR 2021) as a NIR-guided comparison network: shapes, size, matching by value."""
import pytest
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY

from cspsr_arch.archs.cspsr_arch import CSPSROutput
from cspsr_arch.archs.hr_nir import nir_on_lr_grid
from cspsr_arch.archs.masasr_arch import PUBLISHED_PARAMS_X4, MASASR
from cspsr_arch.archs.masasr_blocks import (CoarseToFineMatch, SpatialAdaptation, coarse_match, exhaustive_match,
                                            fine_match, transfer)

TINY = {'num_feat': 8, 'num_blocks_enc': (1, 1, 1), 'num_blocks_lr': (1, 0, 1), 'num_blocks_x1': 1,
        'num_blocks_up': (1, 1)}


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_registered():
    assert ARCH_REGISTRY.get('MASASR') is MASASR


@pytest.mark.parametrize('upscale, nir_scale, size', [(2, 1, (13, 19)), (2, 2, (13, 19)), (4, 1, (13, 19)),
                                                      (4, 4, (13, 19)), (4, 2, (8, 16)), (4, 1, (5, 3))])
def test_output_shape_and_fields(upscale, nir_scale, size):
    torch.manual_seed(0)
    net = MASASR(upscale=upscale, nir_scale=nir_scale, **TINY).eval()
    lq = torch.rand(2, 3, *size)
    nir = torch.rand(2, 1, nir_scale * size[0], nir_scale * size[1])
    with torch.no_grad():
        out = net(lq, nir)
    assert isinstance(out, CSPSROutput)
    assert out.sr.shape == (2, 3, upscale * size[0], upscale * size[1]) and torch.isfinite(out.sr).all()
    assert out.nir_sr is None and out.disp_r is None
    assert out.disp_l.shape == (2, 1, *size) and not out.disp_l.any()


def test_separate_nir_conv_adds_ten_c_parameters_and_runs():
    net = MASASR(nir_input='separate', **TINY).eval()
    assert _params(net) - _params(MASASR(**TINY)) == 10 * 8  # a 3x3 conv from 1 channel to C, with bias
    with torch.no_grad():
        assert net(torch.rand(1, 3, 9, 10), torch.rand(1, 1, 9, 10)).sr.shape == (1, 3, 36, 40)


def test_paper_size_parameter_count():
    """The release's layers (models/archs/MASA_arch.py: C=64, encoder 4+4+4 residual blocks, decoder 2+2+2, 12,
    8, 4), counted by hand, are the 4.03 M of the paper, and MASASR() has exactly them."""
    c = 64
    conv = lambda cin, k=3: cin * c * k * k + c  # noqa: E731
    block = 2 * conv(c)
    encoder = conv(3) + 2 * conv(c) + 12 * block
    lr_unet = conv(c) + 2 * conv(2 * c) + 6 * block
    sam = conv(2 * c) + 2 * conv(c)
    x1 = conv(2 * c) + 12 * block
    dram = 4 * conv(c) + conv(2 * c)  # two strided convs, two transposed convs (same count), the fusion
    out = 64 * 3 * 9 + 3
    expected = encoder + lr_unet + sam + x1 + 2 * dram + 12 * block + out
    assert expected == 4_028_291
    assert _params(MASASR()) == expected
    assert abs(expected - PUBLISHED_PARAMS_X4) / PUBLISHED_PARAMS_X4 < 0.01
    assert _params(MASASR(upscale=2)) == expected - dram - 4 * block  # x2: no 4x stage


def _shifted_pair(shift=(2, -3), size=(24, 32), channels=6, seed=0):
    """LR features and Ref↓ features holding them shifted: ref[y + dy, x + dx] = lr[y, x] (the rest random)."""
    gen = torch.Generator().manual_seed(seed)
    (dy, dx), (h, w) = shift, size
    lr = torch.rand(1, channels, h, w, generator=gen)
    ref = torch.rand(1, channels, h, w, generator=gen)
    ref[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = lr[..., max(-dy, 0):h - max(dy, 0),
                                                                          max(-dx, 0):w - max(dx, 0)]
    return lr, ref


@pytest.mark.parametrize('shift, blocks, checked', [((2, -3), ((0, 1), (1, 2, 3)), 15 * 23),
                                                     ((-2, 3), ((1, 2), (0, 1, 2)), 15 * 23)])
def test_matching_finds_the_shift_and_coarse_to_fine_equals_exhaustive(shift, blocks, checked):
    """Ref↓ = the LR features shifted by (dy, dx). Block centres (8 x 8 blocks) are at (3 + 8i, 3 + 8j); their
    patches at dilations 1-3 reach 3 pixels, so the blocks whose shifted centre keeps them inside the 24 x 32
    Ref↓ match there exactly (cosine 1 at every dilation, the maximum): for (2, -3) the block rows i = 0, 1 and
    columns j = 1, 2, 3; for (-2, 3) i = 1, 2 and j = 0, 1, 2. Every pixel of those blocks whose patch and shifted
    patch are whole (not on the image border) matches at p + (dy, dx) in the coarse-to-fine search and in the
    exhaustive one: 15 rows x 23 columns of them in both cases."""
    (dy, dx), (rows, cols) = shift, blocks
    height, width = 24, 32
    lr, ref = _shifted_pair((dy, dx), (height, width))
    centres = coarse_match(lr, ref, 8)
    assert centres.shape == (1, 3, 4)
    for i in rows:
        for j in cols:
            assert centres[0, i, j] == (3 + 8 * i + dy) * width + 3 + 8 * j + dx, (i, j)
    index, score = fine_match(lr, ref, centres, 8)
    module_index, module_score = CoarseToFineMatch()(lr, ref)  # the matches, their similarity recomputed
    assert torch.equal(module_index, index) and torch.allclose(module_score, score, atol=1e-6)
    full, full_score = exhaustive_match(lr, ref)
    count = 0
    for y in range(1, height - 1):
        for x in range(1, width - 1):
            target_y, target_x = y + dy, x + dx
            if not (1 <= target_y <= height - 2 and 1 <= target_x <= width - 2):
                continue
            want = target_y * width + target_x
            assert full[0, y, x] == want, (y, x)
            assert abs(full_score[0, 0, y, x] - 1) < 1e-5
            if y // 8 in rows and x // 8 in cols:
                assert index[0, y, x] == want, (y, x)
                assert abs(score[0, 0, y, x] - 1) < 1e-5
                count += 1
    assert count == checked
    # every pixel, the image border included (patches replicate-padded in both searches): where the block's
    # window (13 x 13 candidate centres around its coarse match, kept within rows 1-22 and columns 1-30) holds
    # the exhaustive match, the coarse-to-fine search finds it too
    agree = 0
    for y in range(height):
        for x in range(width):
            cy, cx = divmod(int(centres[0, y // 8, x // 8]), width)
            top, left = min(max(cy - 6, 1), height - 14), min(max(cx - 6, 1), width - 14)
            my, mx = divmod(int(full[0, y, x]), width)
            if top <= my < top + 13 and left <= mx < left + 13:
                assert index[0, y, x] == full[0, y, x], (y, x)
                agree += 1
    assert agree > checked


def test_windows_are_clipped_to_a_small_reference():
    """LR and Ref↓ of 8 x 16 (random): the 13 x 13 window shrinks to the 6 rows of whole-patch centres and
    keeps 13 of the 14 columns (from column clamp(c - 6, 1, 2)); wherever it holds the exhaustive match, the
    coarse-to-fine search finds it."""
    gen = torch.Generator().manual_seed(1)
    lr, ref = torch.rand(1, 4, 8, 16, generator=gen), torch.rand(1, 4, 8, 16, generator=gen)
    centres = coarse_match(lr, ref, 8)
    index, _ = fine_match(lr, ref, centres, 8)
    full, _ = exhaustive_match(lr, ref)
    inside = 0
    for y in range(8):
        for x in range(16):
            left = min(max(int(centres[0, 0, x // 8]) % 16 - 6, 1), 2)
            if left <= int(full[0, y, x]) % 16 < left + 13:
                assert index[0, y, x] == full[0, y, x], (y, x)
                inside += 1
            else:
                assert index[0, y, x] != full[0, y, x]
    assert inside > 64


def test_coarse_match_maximises_the_sum_over_dilations_of_the_centre_patch_similarities():
    """By definition on a tiny case: one 8 x 8 block (centre pixel (3, 3)), Ref↓ zero-padded; the patches at
    dilations 1, 2 and 3 each compared by cosine similarity and the three summed."""
    gen = torch.Generator().manual_seed(3)
    lr, ref = torch.rand(1, 2, 8, 8, generator=gen) - 0.5, torch.rand(1, 2, 7, 9, generator=gen) - 0.5
    padded = F.pad(ref, (3, 3, 3, 3))
    best, best_score = None, -10.0
    for y in range(7):
        for x in range(9):
            score = 0.0
            for d in (1, 2, 3):
                a = lr[0, :, 3 - d:3 + d + 1:d, 3 - d:3 + d + 1:d].flatten()
                b = padded[0, :, y + 3 - d:y + 3 + d + 1:d, x + 3 - d:x + 3 + d + 1:d].flatten()
                score += float(a @ b / (a.norm() * b.norm()).clamp_min(1e-12))
            if score > best_score:
                best, best_score = y * 9 + x, score
    assert coarse_match(lr, ref, 8).item() == best


def test_transfer_is_the_overlap_average_of_the_matched_patches():
    """By definition: output cell p (t x t) = mean over the LR pixels p' within one pixel of p of the Ref cell
    q(p') + (p - p'), times the similarity bilinearly upsampled by t."""
    torch.manual_seed(0)
    for scale in (1, 2):
        ref_h, ref_w, height, width = 5, 6, 3, 4
        ref_feat = torch.rand(1, 2, scale * ref_h, scale * ref_w)
        ys, xs = torch.randint(1, ref_h - 1, (1, height, width)), torch.randint(1, ref_w - 1, (1, height, width))
        index, score = ys * ref_w + xs, torch.rand(1, 1, height, width)
        got = transfer(ref_feat, index, score, scale)
        want = torch.zeros(1, 2, scale * height, scale * width)
        for y in range(height):
            for x in range(width):
                cells = []
                for sy in range(max(y - 1, 0), min(y + 2, height)):
                    for sx in range(max(x - 1, 0), min(x + 2, width)):
                        qy, qx = int(ys[0, sy, sx]) + y - sy, int(xs[0, sy, sx]) + x - sx
                        cells.append(ref_feat[0, :, scale * qy:scale * qy + scale, scale * qx:scale * qx + scale])
                want[0, :, scale * y:scale * y + scale, scale * x:scale * x + scale] = torch.stack(cells).mean(0)
        up = F.interpolate(score, scale_factor=scale, mode='bilinear', align_corners=False) if scale > 1 else score
        assert torch.allclose(got, want * up, atol=1e-6), scale


def test_spatial_adaptation_remaps_the_statistics_by_hand():
    """Untrained SAM (gamma, beta zero): (ref - mean) / std * std_lr + mean_lr per channel, population std."""
    sam = SpatialAdaptation(2)
    ref = torch.tensor([[[[0., 2.], [2., 0.]], [[1., 1.], [1., 5.]]]])  # means 1, 2; variances 1, 3
    lr = torch.tensor([[[[1., 3.], [5., 7.]], [[0., 0.], [0., -2.]]]])  # means 4, -0.5; variances 5, 0.75
    with torch.no_grad():
        out = sam(lr, ref)
    eps = 1e-5
    want0 = 4 + (5 + eps)**0.5 / (1 + eps)**0.5 * torch.tensor([[-1., 1.], [1., -1.]])
    want1 = -0.5 + (0.75 + eps)**0.5 / (3 + eps)**0.5 * torch.tensor([[-1., -1.], [-1., 3.]])
    assert torch.allclose(out[0, 0], want0, atol=1e-6) and torch.allclose(out[0, 1], want1, atol=1e-6)
    var, mean = torch.var_mean(out, dim=(2, 3), correction=0)
    assert torch.allclose(mean, torch.tensor([[4., -0.5]]), atol=1e-6)
    assert torch.allclose(var, torch.tensor([[5., 0.75]]), atol=1e-4)


def test_a_constant_feature_channel_keeps_the_gradients_finite():
    """A dead ReLU channel (constant over the image) has zero variance: without eps on the LR side its square
    root's gradient is infinite and training turns to NaN."""
    sam = SpatialAdaptation(2)
    lr = torch.rand(1, 2, 4, 4)
    lr[:, 1] = 0.0  # a dead channel
    lr.requires_grad_(True)
    ref = torch.rand(1, 2, 4, 4, requires_grad=True)
    sam(lr, ref).square().sum().backward()
    assert torch.isfinite(lr.grad).all() and torch.isfinite(ref.grad).all()


@pytest.mark.parametrize('nir_scale', [1, 2, 4])
def test_the_matching_compares_the_lr_features_with_the_downscaled_reference(nir_scale):
    """Ref = the NIR bicubic-upscaled by 4 / nir_scale (the NIR itself at 4), Ref↓ = its antialiased bicubic
    reduction to the LR size; the matcher gets the encoder's first level of the LR image and of Ref↓ (the NIR
    repeated to 3 channels), and the transfer the Ref's levels at 4x, 2x and 1x the LR size."""
    torch.manual_seed(0)
    net = MASASR(nir_scale=nir_scale, **TINY).eval()
    seen = []
    net.match.register_forward_pre_hook(lambda module, args: seen.append(args))
    lq, nir = torch.rand(1, 3, 8, 16), torch.rand(1, 1, 8 * nir_scale, 16 * nir_scale)
    with torch.no_grad():
        net(lq, nir)
        ref = nir if nir_scale == 4 else F.interpolate(nir, scale_factor=4 // nir_scale, mode='bicubic',
                                                       align_corners=False)
        ref_down = nir_on_lr_grid(ref, (8, 16)).repeat(1, 3, 1, 1)
        assert torch.allclose(seen[0][0], net.encoder(lq, 1)[0], atol=1e-6)
        assert torch.allclose(seen[0][1], net.encoder(ref_down, 1)[0], atol=1e-6)
        assert [tuple(f.shape[-2:]) for f in net.encode_nir(ref, 3)] == [(32, 64), (16, 32), (8, 16)]


def test_strict_checkpoint_round_trip():
    torch.manual_seed(0)
    net = MASASR(upscale=2, nir_input='separate', **TINY).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))  # SAM's zero convolutions too
    torch.manual_seed(1)
    other = MASASR(upscale=2, nir_input='separate', **TINY).eval()
    lq, nir = torch.rand(1, 3, 9, 11), torch.rand(1, 1, 9, 11)
    with torch.no_grad():
        before = other(lq, nir).sr
        other.load_state_dict(net.state_dict(), strict=True)
        assert not torch.allclose(before, net(lq, nir).sr)
        assert torch.equal(other(lq, nir).sr, net(lq, nir).sr)


@pytest.mark.parametrize('nir_scale', [1, 4])
def test_the_nir_changes_the_output(nir_scale):
    """Untrained, SAM gives the Ref features the (small) statistics of the LR decoder features, so the NIR's
    effect is small but not zero; with weights moved off their initial values (SAM's zero convolutions
    too), as training does, it is large. With nir_scale 4 the NIR is the HR reference itself."""
    torch.manual_seed(0)
    net = MASASR(upscale=4, nir_scale=nir_scale, **TINY).eval()
    lq = torch.rand(1, 3, 8, 10)
    nir = torch.rand(1, 1, 8 * nir_scale, 10 * nir_scale)
    other = nir.clone()
    other[..., :nir.size(2) // 2, :] = 1 - other[..., :nir.size(2) // 2, :]
    with torch.no_grad():
        assert (net(lq, nir).sr - net(lq, other).sr).abs().max() > 1e-6
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
        assert (net(lq, nir).sr - net(lq, other).sr).abs().max() > 1e-2


def test_gradients_reach_every_parameter():
    """The matches carry no gradient; the encoder still learns through the similarities and the transferred Ref.
    SAM's shared convolution gets its gradient through the gamma/beta convolutions, zero at first (so none on
    the first step, as in the release)."""
    torch.manual_seed(0)
    net = MASASR(**TINY)
    lq, nir = torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8)
    net(lq, nir).sr.square().mean().backward()
    zero = {name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}
    assert zero == {'decoder.sam.shared.0.weight', 'decoder.sam.shared.0.bias'}
    with torch.no_grad():
        net.decoder.sam.gamma.weight.normal_(0, 0.01)
    net.zero_grad()
    net(lq, nir).sr.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_the_similarities_carry_the_gradient_of_both_feature_maps():
    """The indices are integers (no gradient); the similarities that weight the transferred Ref features are
    differentiable in the LR and the Ref↓ features, the cosine of the matched patches."""
    lr, ref = _shifted_pair((1, 1), (16, 16), channels=3)
    lr.requires_grad_(True)
    ref.requires_grad_(True)
    index, score = CoarseToFineMatch()(lr, ref)
    assert not index.dtype.is_floating_point
    score.sum().backward()
    assert lr.grad.abs().sum() > 0 and ref.grad.abs().sum() > 0


def test_bad_inputs_raise_value_errors():
    net = MASASR(upscale=4, nir_scale=2, **TINY)
    with pytest.raises(ValueError, match=r'differ in batch or size.*nir_scale \(2\) x the VIS size'):
        net(torch.rand(1, 3, 8, 10), torch.rand(1, 1, 8, 10))
    with pytest.raises(ValueError, match=r'NIR input as \(n, 1, 2\*h, 2\*w\)'):
        net(torch.rand(1, 3, 8, 10), torch.rand(1, 3, 16, 20))
    with pytest.raises(ValueError, match=r'VIS input as \(n, 3, h, w\)'):
        net(torch.rand(1, 1, 8, 10), torch.rand(1, 1, 16, 20))
    with pytest.raises(ValueError, match='at least 3x3'):
        MASASR(**TINY)(torch.rand(1, 3, 2, 5), torch.rand(1, 1, 2, 5))
    for nir_scale in (3, 0, 2.0, True):
        with pytest.raises(ValueError, match=r'nir_scale must be a positive integer that divides upscale \(4\)'):
            MASASR(upscale=4, nir_scale=nir_scale, **TINY)
    for upscale in (3, 2.0, 8):
        with pytest.raises(ValueError, match='upscale must be 2 or 4'):
            MASASR(upscale=upscale, **TINY)
    with pytest.raises(ValueError, match='nir_input must be one of'):
        MASASR(nir_input='concat', **TINY)
