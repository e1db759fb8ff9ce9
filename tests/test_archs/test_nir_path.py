"""CSPSR(nir_path=True): CMSR's guide branch from the matched HR NIR straight to the VIS output, by value."""
import pytest
import torch

from cspsr_arch.archs.cspsr_arch import CSPSR

TINY = {'num_feat': 8, 'num_dmf': 2, 'max_disp': 8}


def test_the_path_starts_at_zero():
    torch.manual_seed(0)
    with_path = CSPSR(**TINY, nir_scale=4, nir_path=True).eval()
    plain = CSPSR(**TINY, nir_scale=4).eval()
    extra = plain.load_state_dict(with_path.state_dict(), strict=False).unexpected_keys
    assert extra and all(k.startswith('nir_path.') for k in extra)
    lq, nir = torch.rand(2, 3, 8, 12), torch.rand(2, 1, 32, 48)
    with torch.no_grad():
        assert torch.equal(with_path(lq, nir).sr, plain(lq, nir).sr)


def test_a_pass_through_path_adds_the_matched_nir_to_every_channel():
    """Path weights set to pass the NIR through: SR with the path - SR without = NIR_r(y, X - 4 d), 0 where invalid."""
    torch.manual_seed(0)
    net = CSPSR(**TINY, cvm='given', nir_scale=4, nir_path=True).eval()
    with torch.no_grad():
        for conv in net.nir_path[:-1:2]:
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[0, 0, 1, 1] = 1.0  # channel 0 (the NIR) through the centre tap
        net.nir_path[-1].weight.zero_()
        net.nir_path[-1].weight[:, 0] = 1.0
        lq, right = torch.rand(1, 3, 6, 10), torch.rand(1, 1, 24, 40)
        disp = torch.full((1, 1, 6, 10), 2.0)  # LR pixels: 8 output pixels
        with_path = net(lq, right, disp).sr
        net.nir_path = None
        without = net(lq, right, disp).sr
    added = with_path - without
    assert torch.allclose(added[..., 8:], right[..., :32].expand(1, 3, 24, 32), atol=1e-5)
    assert added[..., :8].abs().max() < 1e-6  # no NIR there: the warp's invalid columns are zero


@pytest.mark.parametrize('options', [{'nir_scale': 2}, {'nir_scale': 1}, {'branches': 'vis', 'cvm': 'none'}])
def test_the_path_needs_the_nir_at_the_output_size(options):
    with pytest.raises(ValueError, match='nir_path'):
        CSPSR(**TINY, nir_path=True, **options)
