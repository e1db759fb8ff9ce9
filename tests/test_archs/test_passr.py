"""PASSR (Wang et al., CVPR 2019) as a comparison network: shapes, size, parallax attention by value, the losses."""
import math

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from cspsr_arch.archs.passr_arch import (PASSR, PUBLISHED_PARAMS, ASPPGroup, AttentionMaps, ParallaxAttention,
                                         ResASPPB, close_occlusions, passr_losses)

TINY = {'num_feat': 8, 'num_up_blocks': 1}


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _pair(height: int = 8, width: int = 10, batch: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    return torch.rand(batch, 3, height, width), torch.rand(batch, 1, height, width)


@pytest.mark.parametrize('upscale, height, width', [(2, 8, 10), (4, 8, 10), (4, 13, 19), (2, 13, 19)])
def test_output_shapes_and_fields(upscale, height, width):
    torch.manual_seed(0)
    net = PASSR(**TINY, upscale=upscale).eval()
    lq, nir = _pair(height, width, batch=2)
    with torch.no_grad():
        out = net(lq, nir)
    assert out.sr.shape == (2, 3, upscale * height, upscale * width)
    assert out.nir_sr is None and out.disp_r is None
    assert out.disp_l.shape == (2, 1, height, width) and not out.disp_l.any()
    maps = net.last_attention
    assert isinstance(maps, AttentionMaps)
    assert maps.right_to_left.shape == maps.left_to_right.shape == (2, height, width, width)
    assert maps.valid_left.shape == maps.valid_right.shape == (2, 1, height, width)
    for m in (maps.right_to_left, maps.left_to_right):  # softmax over the other view's row
        assert torch.allclose(m.sum(-1), torch.ones(2, height, width), atol=1e-5) and m.min() >= 0


def test_registered_and_flags():
    assert ARCH_REGISTRY.get('PASSR') is PASSR
    assert PASSR.row_context is True and PASSR.cvm == 'none' and PASSR.branches == 'single'
    net = PASSR(**TINY, keep_attention=False).eval()
    with torch.no_grad():
        net(*_pair())
    assert net.last_attention is None


def test_no_global_skip():
    """PASSRnet's output is its upsampling part's alone: with the last convolution zeroed, the output is 0."""
    net = PASSR(**TINY).eval()
    with torch.no_grad():
        net.upsample[-1].weight.zero_()
        assert not net(*_pair()).sr.any()


def _by_hand(c: int, scale: int, in_ch: int = 3, separate: bool = True) -> int:
    """PASSRnet's parameters from its layer list (the paper's layers, sizes of the authors' code)."""
    resb = 2 * 9 * c * c  # two 3x3 convolutions, no bias
    res_aspp = 3 * (3 * 9 * c * c + 3 * c * c)  # three groups: three dilated 3x3 + a 1x1 fusion, no bias
    extractor = 9 * in_ch * c + (9 * c if separate else 0) + 3 * resb + 2 * res_aspp
    pam = resb + 3 * (c * c + c) + (2 * c + 1) * c + c  # transition block, Q/S/R 1x1 with bias, fusion 1x1
    upsample = 4 * resb + c * c * scale * scale + 9 * c * in_ch + 9 * in_ch * in_ch
    return extractor + pam + upsample


@pytest.mark.parametrize('scale', [4, 2])
def test_paper_size_parameter_count(scale):
    """1,417,553 (x4) and 1,368,401 (x2): the published 1.42 M / 1.37 M plus the NIR's 3x3x1x64 entry."""
    net = PASSR(upscale=scale)
    assert _count(net) == _by_hand(64, scale)
    assert abs(_count(net) / PUBLISHED_PARAMS[scale] - 1) < 0.01
    assert _count(PASSR(upscale=scale, nir_entry='repeat')) == _by_hand(64, scale, separate=False)
    assert _count(net) - _count(PASSR(upscale=scale, nir_entry='repeat')) == 9 * 64


def test_small_benchmark_configuration():
    assert _count(PASSR(num_feat=24)) == _by_hand(24, 4) == 200433


def test_an_aspp_group_sees_at_dilations_1_4_8():
    """All-ones weights (positive, so LeakyReLU passes them): an impulse reaches offsets {-d, 0, d}**2, d = 1, 4, 8."""
    group = ASPPGroup(1)
    with torch.no_grad():
        for p in group.parameters():
            p.fill_(1.0)
        impulse = torch.zeros(1, 1, 21, 21)
        impulse[0, 0, 10, 10] = 1
        out = group(impulse)[0, 0]
    want = torch.zeros(21, 21)
    for d in (1, 4, 8):
        for dy in (-d, 0, d):
            for dx in (-d, 0, d):
                want[10 + dy, 10 + dx] += 1
    assert torch.equal(out, want)


def test_residual_aspp_block_sums_a_cascade_of_groups():
    """Each group = 2 x its input (dilation-1 branch a centre tap, fused with weight 2; the others zero):
    g1 = 2x, g2 = 4x, g3 = 8x, so the block gives x + 2x + 4x + 8x = 15x (a parallel sum would give 7x)."""
    block = ResASPPB(1)
    with torch.no_grad():
        for group in block.groups:
            for p in group.parameters():
                p.zero_()
            group.branches[0][0].weight[0, 0, 1, 1] = 1
            group.fuse.weight[0, 0] = 2
        x = torch.rand(1, 1, 5, 6)
        assert torch.allclose(block(x), 15 * x)


def test_parallax_attention_follows_the_paper_formulas():
    """Random weights: M_right->left = softmax_j(Q(A0) . S(B0)), A0, B0 through the shared transition block;
    out = fusion(cat(M_right->left (x) R(B), A, V_left->right)), R on B itself (not B0), as in the paper."""
    torch.manual_seed(0)
    pam = ParallaxAttention(6)
    left, right = torch.randn(2, 6, 4, 7), torch.randn(2, 6, 4, 7)
    with torch.no_grad():
        out, maps = pam(left, right)
        a0, b0 = pam.transition(left), pam.transition(right)
        q = lambda x: pam.query(x).permute(0, 2, 3, 1)  # noqa: E731
        k = lambda x: pam.key(x).permute(0, 2, 1, 3)  # noqa: E731
        assert torch.allclose(maps.right_to_left, torch.softmax(q(a0) @ k(b0), -1), atol=1e-6)
        assert torch.allclose(maps.left_to_right, torch.softmax(q(b0) @ k(a0), -1), atol=1e-6)
        gathered = torch.einsum('nyij,ncyj->nciy', maps.right_to_left, pam.value(right)).transpose(2, 3)
        want = pam.fusion(torch.cat([gathered, left, maps.valid_left], 1))
    assert torch.allclose(out, want, atol=1e-5)


def _identity_pam(channels: int, scale: float) -> ParallaxAttention:
    """A PAM whose transition block is the identity, Q = scale * A, S = B, R = B (1x1 weights set by hand)."""
    pam = ParallaxAttention(channels)
    eye = torch.eye(channels).view(channels, channels, 1, 1)
    with torch.no_grad():
        pam.transition.body[2].weight.zero_()
        for conv, gain in ((pam.query, scale), (pam.key, 1.0), (pam.value, 1.0)):
            conv.weight.copy_(gain * eye)
            conv.bias.zero_()
    return pam


def test_parallax_attention_finds_a_shift_by_hand():
    """Left features one-hot in the column, right ones the same shifted by d: right(j) = left(j + d).

    With score s at the match and 0 elsewhere, each left row i >= d peaks at right column i - d with
    e^s / (e^s + W - 1), the rest 1 / (e^s + W - 1); rows i < d match nothing: 1 / W. The column sum onto an
    occluded left pixel is (W - d) / (e^s + W - 1) + d / W = 0.0843 < tau = 0.1: invalid.
    """
    width, d, height, s = 24, 2, 3, 10.0
    pam = _identity_pam(width, s)
    left = torch.eye(width).view(1, width, 1, width).expand(1, width, height, width).contiguous()
    right = torch.zeros_like(left)
    right[..., :width - d] = left[..., d:]
    big, small = math.exp(s) / (math.exp(s) + width - 1), 1 / (math.exp(s) + width - 1)
    want_rl = torch.full((width, width), small)
    want_lr = torch.full((width, width), small)
    want_rl[:d], want_lr[width - d:] = 1 / width, 1 / width
    for i in range(d, width):
        want_rl[i, i - d] = big
        want_lr[i - d, i] = big
    with torch.no_grad():
        out, maps = pam(left, right)
    for y in range(height):
        assert torch.allclose(maps.right_to_left[0, y], want_rl, atol=1e-6)
        assert torch.allclose(maps.left_to_right[0, y], want_lr, atol=1e-6)
    assert torch.allclose(maps.right_to_left.sum(-1), torch.ones(1, height, width), atol=1e-6)
    want_valid_l, want_valid_r = torch.ones(1, 1, height, width), torch.ones(1, 1, height, width)
    want_valid_l[..., :d] = 0  # left pixels the right view does not see
    want_valid_r[..., width - d:] = 0  # right pixels the left view does not see
    assert torch.equal(maps.valid_left, want_valid_l) and torch.equal(maps.valid_right, want_valid_r)
    # the fusion concatenates (gathered right features, left features, valid mask): select each in turn
    gathered = torch.zeros(width, width)  # channel c at left column i
    for i in range(width):
        gathered[:, i] = (1 / width if i < d else small) * (torch.arange(width) >= d)
        if i >= d:
            gathered[i, i] = big
    for part, want in enumerate((gathered.view(1, width, 1, width).expand_as(left), left,
                                 want_valid_l.expand_as(left))):
        with torch.no_grad():
            pam.fusion.weight.zero_()
            pam.fusion.bias.zero_()
            if part < 2:
                pam.fusion.weight[:, part * width:(part + 1) * width, 0, 0] = torch.eye(width)
            else:
                pam.fusion.weight[:, 2 * width, 0, 0] = 1
            out, _ = pam(left, right)
        assert torch.allclose(out, want, atol=1e-6), part


def test_mask_closing_fills_narrow_valid_gaps_between_occlusions():
    """Occluded columns 5-8 and 11-14 of a 9-row mask; disk radius 3 (x**2 + y**2 <= 9).

    Dilation covers columns 2-17 of the image and of the 3 non-occluded rows padded above and below, except
    where the disk's tip does not reach: padded row -3 (and 11) only in the occluded columns. Erosion keeps a
    pixel whose whole disk is dilated: the gap (columns 9-10) closes in rows 1-7; in rows 0 and 8 its disk
    reaches row -3 / 11 at columns 9-10, 3 rows and 1-2 columns (distance > 3) from any occluded pixel: it
    stays valid. The occluded pixels stay occluded, columns 4 and 15 stay valid (their disks reach columns 1
    and 18). Radius 0: no change.
    """
    valid = torch.ones(1, 1, 9, 20)
    valid[..., 5:9] = 0
    valid[..., 11:15] = 0
    want = valid.clone()
    want[..., 1:8, 9:11] = 0
    assert torch.equal(close_occlusions(valid, 3), want)
    assert torch.equal(close_occlusions(valid, 0), valid)
    border = torch.ones(1, 1, 9, 20)
    border[..., :2] = 0  # occluded columns at the border (a shifted view) grow into the padding and survive
    assert torch.equal(close_occlusions(border, 3), border)
    speck = torch.ones(1, 1, 9, 20)
    speck[0, 0, 4, 10] = 0  # an isolated occluded pixel stays (a closing only grows the occluded region)
    assert torch.equal(close_occlusions(speck, 3), speck)


def _maps(m_rl, m_lr, v_l=None, v_r=None) -> AttentionMaps:
    n, h, w = m_rl.shape[:3]
    ones = torch.ones(n, 1, h, w)
    return AttentionMaps(m_rl, m_lr, ones if v_l is None else v_l, ones if v_r is None else v_r)


def test_identity_attention_and_equal_views_give_zero_losses():
    eye = torch.eye(5).expand(2, 3, 5, 5)
    image = torch.rand(2, 1, 3, 5)
    losses = passr_losses(_maps(eye, eye), image, image)
    assert all(float(v) == 0 for v in losses.values())


def test_photometric_loss_compares_the_vis_luma_with_the_nir():
    """Identity attention, constant VIS (0.2, 0.5, 0.9) and NIR 0.3: 2 |0.299*0.2 + 0.587*0.5 + 0.114*0.9 - 0.3|."""
    eye = torch.eye(4).expand(1, 2, 4, 4)
    vis = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1).expand(1, 3, 2, 4)
    nir = torch.full((1, 1, 2, 4), 0.3)
    losses = passr_losses(_maps(eye, eye), vis, nir, weight=0.5)
    assert abs(float(losses['photometric']) - 2 * 0.1559) < 1e-6
    assert float(losses['cycle']) == 0 and float(losses['smooth']) == 0
    assert abs(float(losses['total']) - 0.5 * 2 * 0.1559) < 1e-6


def test_a_true_shift_costs_nothing_where_valid():
    """Right view = left shifted by d; maps that follow the shift: photometric and cycle 0 over the valid pixels."""
    n, h, w, d = 1, 2, 6, 1
    m_rl, m_lr = torch.full((n, h, w, w), 1 / w), torch.full((n, h, w, w), 1 / w)
    for i in range(d, w):
        m_rl[:, :, i] = 0
        m_rl[:, :, i, i - d] = 1
        m_lr[:, :, i - d] = 0
        m_lr[:, :, i - d, i] = 1
    v_l, v_r = torch.ones(n, 1, h, w), torch.ones(n, 1, h, w)
    v_l[..., :d], v_r[..., w - d:] = 0, 0
    torch.manual_seed(0)
    left, right = torch.rand(n, 1, h, w), torch.rand(n, 1, h, w)
    right[..., :w - d] = left[..., d:]
    masked = passr_losses(_maps(m_rl, m_lr, v_l, v_r), left, right)
    assert float(masked['photometric']) < 1e-7 and float(masked['cycle']) < 1e-7
    unmasked = passr_losses(_maps(m_rl, m_lr), left, right)
    assert float(unmasked['photometric']) > 1e-3 and float(unmasked['cycle']) > 1e-3


def test_cycle_loss_counts_the_rows_of_the_valid_pixels():
    """M_right->left sends left i >= 1 to right i - 1, 0 to 0; M_left->right = Id: the cycle errs in rows 1..W-1
    (|0 - 1| + |1 - 0| each). Only left pixel 0 valid: 0; all valid: 2 (W - 1) / W**2 (mean over W x W)."""
    w = 4
    shift = torch.zeros(w, w)
    shift[0, 0] = 1
    for i in range(1, w):
        shift[i, i - 1] = 1
    m_rl, m_lr = shift.expand(1, 1, w, w), torch.eye(w).expand(1, 1, w, w)
    image = torch.zeros(1, 1, 1, w)
    v_l = torch.zeros(1, 1, 1, w)
    v_l[..., 0] = 1
    v_r = torch.zeros(1, 1, 1, w)
    assert float(passr_losses(_maps(m_rl, m_lr, v_l, v_r), image, image)['cycle']) == 0
    all_valid = passr_losses(_maps(m_rl, m_lr, torch.ones_like(v_l), v_r), image, image)['cycle']
    assert abs(float(all_valid) - 2 * (w - 1) / w ** 2) < 1e-7


def test_smoothness_loss_compares_the_next_row_and_the_diagonal_neighbour():
    """Rows y = 0, 1: Id then a cyclic shift P: the vertical term is mean |Id - P| = 2 / W; both keep their
    diagonals, so the diagonal term is 0. A single 1 at (i, j) = (0, 1) in a one-row map: diagonal term
    1 / (W - 1)**2 (it has no (i+1, j+1) partner), vertical term 0 (no next row)."""
    w = 5
    eye = torch.eye(w)
    m = torch.stack([eye, eye.roll(1, dims=1)]).unsqueeze(0)
    losses = passr_losses(_maps(m, eye.expand(1, 2, w, w)), torch.zeros(1, 1, 2, w), torch.zeros(1, 1, 2, w))
    assert abs(float(losses['smooth']) - 2 / w) < 1e-7
    single = torch.zeros(1, 1, w, w)
    single[0, 0, 0, 1] = 1
    losses = passr_losses(_maps(single, torch.zeros(1, 1, w, w)), torch.zeros(1, 1, 1, w), torch.zeros(1, 1, 1, w))
    assert abs(float(losses['smooth']) - 1 / (w - 1) ** 2) < 1e-7


def test_losses_of_a_forward_reach_the_attention_weights():
    torch.manual_seed(0)
    net = PASSR(**TINY)
    lq, nir = _pair(6, 9)
    net(lq, nir)
    losses = passr_losses(net.last_attention, lq, nir)
    assert all(torch.isfinite(v) for v in losses.values())
    losses['total'].backward()
    assert net.pam.query.weight.grad.abs().sum() > 0 and net.pam.key.weight.grad.abs().sum() > 0


def test_strict_checkpoint_round_trip():
    torch.manual_seed(0)
    net = PASSR(**TINY, upscale=2).eval()
    torch.manual_seed(1)
    other = PASSR(**TINY, upscale=2).eval()
    state = net.state_dict()
    assert not any('attention' in k for k in state)
    other.load_state_dict(state, strict=True)
    lq, nir = _pair(7, 9)
    with torch.no_grad():
        assert torch.equal(net(lq, nir).sr, other(lq, nir).sr)


@pytest.mark.parametrize('nir_entry', ['separate', 'repeat'])
def test_the_nir_changes_the_output(nir_entry):
    torch.manual_seed(0)
    net = PASSR(**TINY, nir_entry=nir_entry).eval()
    lq, nir = _pair(8, 10)
    other = nir.clone()
    other[..., 2:6, 3:7] = 1 - other[..., 2:6, 3:7]
    with torch.no_grad():
        assert (net(lq, nir).sr - net(lq, other).sr).abs().max() > 1e-4


def test_bad_inputs_are_refused_with_a_clear_message():
    net = PASSR(**TINY)
    lq = torch.rand(1, 3, 8, 10)
    with pytest.raises(ValueError, match=r'differ in batch or size'):
        net(lq, torch.rand(1, 1, 8, 11))
    with pytest.raises(ValueError, match=r'NIR input as \(n, 1, h, w\)'):
        net(lq, torch.rand(1, 3, 8, 10))
    for nir_scale in (2, 4, True):
        with pytest.raises(ValueError, match=r'PASSR takes the NIR at the LR size only \(nir_scale=1\)'):
            PASSR(**TINY, nir_scale=nir_scale)
    with pytest.raises(ValueError, match='upscale must be 2, 3 or 4'):
        PASSR(**TINY, upscale=8)
    with pytest.raises(ValueError, match='nir_entry must be one of'):
        PASSR(**TINY, nir_entry='concat')
    maps = _maps(torch.eye(4).expand(1, 2, 4, 4), torch.eye(4).expand(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r'lq_right must be \(n, c, h, w\) = \(1, c, 2, 4\)'):
        passr_losses(maps, torch.rand(1, 3, 2, 4), torch.rand(1, 1, 2, 5))
    with pytest.raises(ValueError, match='same channels, or 3 and 1'):
        passr_losses(maps, torch.rand(1, 2, 2, 4), torch.rand(1, 1, 2, 4))
