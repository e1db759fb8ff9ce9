"""The polyphase bicubic upsampling of the global skips (cspsr_arch/archs/bicubic.py) against F.interpolate."""
import pytest
import torch
import torch.nn.functional as F

from cspsr_arch.archs.bicubic import bicubic_phases, bicubic_phases_unshuffled, phase_weights
from cspsr_arch.archs.branch import ShuffleHead


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('size', [(7, 11), (1, 3), (2, 2)])
def test_phases_then_pixel_shuffle_equal_bicubic_interpolation(scale, size):
    """Inside, at the clamped borders, and on images narrower than the 5-tap window."""
    torch.manual_seed(0)
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.rand(2, 3, *size).contiguous(memory_format=fmt)
        want = F.interpolate(x, scale_factor=scale, mode='bicubic', align_corners=False)
        assert torch.allclose(F.pixel_shuffle(bicubic_phases(x, scale), scale), want, atol=1e-6)


def test_phase_weights_by_hand():
    """x2: output 2i samples the input at i - 1/4 (taps i-2..i+1), output 2i+1 at i + 1/4 (taps i-1..i+2)."""
    a = -0.75
    cubic = lambda d: ((a + 2) * d - (a + 3)) * d * d + 1 if d <= 1 else ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # noqa: E731
    even = [cubic(1.75), cubic(0.75), cubic(0.25), cubic(1.25), 0.0]
    odd = [0.0, cubic(1.25), cubic(0.25), cubic(0.75), cubic(1.75)]
    assert [w for row in phase_weights(2) for w in row] == pytest.approx(even + odd)
    for scale in (2, 3, 4):
        assert [sum(row) for row in phase_weights(scale)] == pytest.approx([1.0] * scale)  # constants stay constant


def test_head_adds_the_bicubic_base_before_the_shuffle():
    torch.manual_seed(0)
    head = ShuffleHead(4, 3, 2)
    x, base = torch.rand(1, 4, 5, 6), torch.rand(1, 3, 5, 6)
    want = F.pixel_shuffle(head[0](x), 2) + F.interpolate(base, scale_factor=2, mode='bicubic', align_corners=False)
    assert torch.allclose(head(x, base), want, atol=1e-6)
    assert torch.allclose(head(x), F.pixel_shuffle(head[0](x), 2))


@pytest.mark.parametrize('factor, scale', [(2, 2), (2, 1), (3, 1), (4, 1), (1, 3), (3, 2)])
@pytest.mark.parametrize('size', [(5, 7), (1, 1), (2, 3)])
def test_phases_of_a_fine_input_on_the_lr_grid_equal_bicubic_interpolation(factor, scale, size):
    """The NIR skip of CSPSR(nir_scale=factor): an input at factor x LR upsampled by scale, in the LR pre-shuffle
    layout."""
    torch.manual_seed(0)
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.rand(2, 2, factor * size[0], factor * size[1]).contiguous(memory_format=fmt)
        phases = bicubic_phases_unshuffled(x, factor, scale)
        assert phases.shape == (2, 2 * (factor * scale)**2, *size)
        got = F.pixel_shuffle(phases, factor * scale)
        if scale == 1:
            assert torch.equal(got, x)
        else:
            want = F.interpolate(x, scale_factor=scale, mode='bicubic', align_corners=False)
            assert torch.allclose(got, want, atol=1e-6)


def test_head_adds_phases_before_the_shuffle():
    torch.manual_seed(0)
    head = ShuffleHead(4, 1, 4)
    x, fine = torch.rand(1, 4, 5, 6), torch.rand(1, 1, 10, 12)
    want = F.pixel_shuffle(head[0](x), 4) + F.interpolate(fine, scale_factor=2, mode='bicubic', align_corners=False)
    assert torch.allclose(head.forward_phases(x, bicubic_phases_unshuffled(fine, 2, 2)), want, atol=1e-6)
    assert torch.equal(head.forward_phases(x), F.pixel_shuffle(head[0](x), 4))
