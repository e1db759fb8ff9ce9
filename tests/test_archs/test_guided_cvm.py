"""Cross-view matching in front of the guide-image comparison networks (MASASR, CMSR: ``cvm``): the network
takes the right-view NIR warped onto the left view, by the given disparity or CSPSR's learned CVM, at the
NIR's own resolution; the checkpoint carries the CVM under ``cvm_net`` as CSPSR's does."""
from pathlib import Path

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

import cspsr_arch  # noqa: F401  (registration)
from cspsr_arch.archs.warp import warp_to_left

TINY = {
    'MASASR': {'num_feat': 8, 'num_blocks_enc': [1, 1, 1], 'num_blocks_lr': [1, 1, 1], 'num_blocks_x1': 1,
               'num_blocks_up': [1, 1]},
    'CMSR': {'num_feat': 8, 'num_layers': 3, 'guide_feat': 4, 'loc_feat': 4},
}


def _net(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return ARCH_REGISTRY.get(name)(upscale=4, **TINY[name], **kwargs).eval()


def _shifted_pair(shift: int, height: int, width: int):
    """A left NIR and the right view of it: ``right(x) = left(x + shift)``, so the left disparity is ``shift``."""
    torch.manual_seed(1)
    left = torch.rand(1, 1, height, width)
    right = torch.zeros_like(left)
    right[..., :width - shift] = left[..., shift:]
    return left, right


def _seen(net: torch.nn.Module, *args):
    """The network's output and the NIR it took (what its ``warp_nir`` gave)."""
    seen = []
    handle = net.warp_nir.register_forward_hook(lambda m, i, o: seen.append(o[0]))
    with torch.no_grad():
        out = net(*args)
    handle.remove()
    return out, seen[0]


@pytest.mark.parametrize('name', ['MASASR', 'CMSR'])
def test_a_given_disparity_brings_the_right_nir_onto_the_left_view(name):
    lq = torch.rand(1, 3, 16, 24)
    nir_left, nir_right = _shifted_pair(3, 16, 24)
    disp = torch.full((1, 1, 16, 24), 3.0)
    net = _net(name, cvm='given')
    out, seen = _seen(net, lq, nir_right, disp)
    # an integer shift: the left view (to grid_sample's rounding); 0 where the right camera does not see
    torch.testing.assert_close(seen[..., 3:], nir_left[..., 3:], atol=1e-6, rtol=0)
    assert seen[..., :3].abs().max() < 1e-6
    assert torch.equal(out.disp_l, disp)
    plain = _net(name)  # the same weights without matching, given the aligned NIR
    plain.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        expected = plain(lq, warp_to_left(nir_right, disp)[0]).sr
    assert torch.equal(out.sr, expected)
    with pytest.raises(ValueError, match="needs the left disparity"):
        net(lq, nir_right)


def test_an_hr_nir_is_aligned_at_its_own_resolution():
    nir_left, nir_right = _shifted_pair(8, 64, 96)  # 2 LR pixels at x4
    net = _net('CMSR', cvm='given', nir_scale=4)
    _, seen = _seen(net, torch.rand(1, 3, 16, 24), nir_right, torch.full((1, 1, 16, 24), 2.0))
    assert seen.shape == nir_left.shape
    torch.testing.assert_close(seen[..., 8:], nir_left[..., 8:], atol=1e-5, rtol=0)  # disparity x 4 = 8 HR px


@pytest.mark.parametrize('name', ['MASASR', 'CMSR'])
def test_the_learned_cvm_is_cspsrs_and_travels_in_the_checkpoint(name, tmp_path):
    net = _net(name, cvm='learned', max_disp=6)
    keys = [k for k in net.state_dict() if k.startswith('cvm_net.')]
    assert keys and type(net.cvm_net).__name__ == 'CrossSpectralStereoNet' and net.cvm_net.max_disp == 6
    lq, nir = torch.rand(1, 3, 16, 24), torch.rand(1, 1, 16, 24)
    with torch.no_grad():
        out = net(lq, nir)
        disp_l, disp_r, _ = net.cvm_net(lq, nir)
    assert torch.equal(out.disp_l, disp_l) and torch.equal(out.disp_r, disp_r)
    torch.save(net.state_dict(), tmp_path / 'net.pth')
    again = _net(name, cvm='learned', max_disp=6)
    again.load_state_dict(torch.load(tmp_path / 'net.pth'), strict=True)
    with torch.no_grad():
        assert torch.equal(again(lq, nir).sr, out.sr)
    with pytest.raises(RuntimeError, match='cvm_net'):  # a checkpoint without the CVM is not silently accepted
        _net(name).load_state_dict(net.state_dict(), strict=True)
    with pytest.raises(ValueError, match='cvm must be one of'):
        _net(name, cvm='sgm')


def test_the_benchmark_gives_a_learned_cvm_the_pretrained_disparity_and_given_its_data(tmp_path):
    from toy_data import make_toy_split

    from cspsr_arch.benchmark.presets import CPU, with_networks
    from cspsr_arch.benchmark.runs import network_cvm, plan
    options = Path(__file__).resolve().parents[2] / 'options'
    make_toy_split(tmp_path / 'train', scales=(4, ))
    preset = with_networks(CPU, ['MASASR.cvm=learned', 'CMSR.cvm=given'])
    runs = plan(options, tmp_path / 'train', preset, ['MASASR', 'CMSR', 'PASSR'], ablations=False).table['bicubic'][4]
    masa, cmsr, passr = runs['MASASR'][0], runs['CMSR'][0], runs['PASSR'][0]
    assert masa.stereo == 'stereo_x4'
    assert masa.opt['path']['pretrain_network_disp'].endswith('experiments/stereo_x4/models/net_g_latest.pth')
    assert masa.opt['network_g']['max_disp'] == CPU.max_disp_hr // 4  # the pre-trained network's range
    assert cmsr.stereo is None and 'dataroot_disp' in cmsr.opt['datasets']['train']
    assert passr.stereo is None and 'dataroot_disp' not in passr.opt['datasets']['train']
    assert network_cvm({'type': 'CSPSR'}) == 'learned' and network_cvm({'type': 'MASASR'}) == 'none'
    assert network_cvm({'type': 'CSPSR', 'cvm': None}) == 'none' and network_cvm({'type': 'EDSR'}) == 'none'
    from cspsr_arch.benchmark.pipeline import _shown  # the report says which NIR a guided network took
    assert _shown({'type': 'MASASR', 'num_feat': 20}) == {'type': 'MASASR', 'num_feat': 20, 'cvm': 'none'}
    assert _shown(masa.opt['network_g'])['cvm'] == 'learned' and 'cvm' not in _shown({'type': 'EDSR'})
