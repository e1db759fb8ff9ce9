"""``basicsr infer`` with VIS-only networks of BasicSR's registry (no ``--nir``), and CSPSR without ``--nir``."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.utils.registry import ARCH_REGISTRY

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.cli import main

NETS = {
    'EDSR': {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_block': 2, 'upscale': 4},
    'RCAN': {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4,
             'upscale': 2},
    'HAT': {'embed_dim': 16, 'depths': [1], 'num_heads': [2], 'window_size': 4, 'compress_ratio': 2,
            'squeeze_factor': 4, 'num_feat': 16, 'upscale': 3},
}
"""Tiny VIS-only networks; each ``upscale`` is what ``basicsr infer`` must measure."""
SIZE = (21, 30)  # LR height, width: a multiple of no window


def _model(folder: Path, arch: str, seed: int = 0):
    """Options file and checkpoint of a randomly initialised ``arch`` of :data:`NETS` (weights as BasicSR saves them)."""
    torch.manual_seed(seed)
    net = ARCH_REGISTRY.get(arch)(**NETS[arch]).eval()
    torch.save({'params': net.state_dict()}, folder / f'{arch}.pth')
    opt = folder / f'{arch}.yml'
    opt.write_text(yaml.safe_dump({'network_g': {'type': arch, **NETS[arch]}}))
    return net, opt, folder / f'{arch}.pth'


def _pairs(folder: Path, names=('a', )) -> list:
    """``<name>_rgb.png`` / ``<name>_nir.png`` of random smooth 8-bit images in one folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = []
    for name in names:
        vis = cv2.resize(rng.random((6, 8, 3)).astype(np.float32), SIZE[::-1], interpolation=cv2.INTER_CUBIC)
        assert cv2.imwrite(str(folder / f'{name}_rgb.png'), np.round(np.clip(vis, 0, 1) * 255).astype(np.uint8))
        assert cv2.imwrite(str(folder / f'{name}_nir.png'), rng.integers(0, 256, SIZE, dtype=np.uint8))
        files.append((folder / f'{name}_rgb.png', folder / f'{name}_nir.png'))
    return files


def _read16(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint16, path
    return img.astype(np.float64) / 65535


def _reference(net, vis_file: Path) -> np.ndarray:
    """The network's own output for an 8-bit VIS file, as (H, W, 3) BGR in [0, 1]."""
    rgb = cv2.imread(str(vis_file))[:, :, ::-1].astype(np.float32) / 255
    with torch.no_grad():
        out = net(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]).clamp(0, 1)
    return out[0].permute(1, 2, 0).numpy()[:, :, ::-1]


@pytest.mark.parametrize('arch', list(NETS))
def test_vis_only_network_without_nir_is_its_own_output(arch, tmp_path):
    net, opt, ckpt = _model(tmp_path, arch)
    (vis, _), = _pairs(tmp_path / 'in')
    assert main(['infer', '-opt', str(opt), '--model', str(ckpt), '--vis', str(vis), '--out', str(tmp_path / 'o.png'),
                 '--bits', '16', '--quiet']) == 0
    out = _read16(tmp_path / 'o.png')
    scale = NETS[arch]['upscale']
    assert out.shape == (scale * SIZE[0], scale * SIZE[1], 3)  # the scale measured by the probe
    assert np.abs(out - _reference(net, vis)).max() <= 1 / 65535 + 1e-6


def test_folder_of_pairs_without_nir_skips_the_nir_files(tmp_path, capsys):
    net, opt, ckpt = _model(tmp_path, 'EDSR')
    files = _pairs(tmp_path / 'pairs', ('a', 'b'))
    args = ['infer', '-opt', str(opt), '--model', str(ckpt), '--vis', str(tmp_path / 'pairs'), '--bits', '16', '--quiet']
    assert main(args + ['--out', str(tmp_path / 'o')]) == 0
    assert sorted(p.name for p in (tmp_path / 'o').iterdir()) == ['a.png', 'b.png']
    for (vis, _), name in zip(files, 'ab'):
        assert np.abs(_read16(tmp_path / 'o' / f'{name}.png') - _reference(net, vis)).max() <= 1 / 65535 + 1e-6
    # the same command with --nir (as for a CSPSR): matched, not read, said so; the same images
    assert main(args + ['--nir', str(tmp_path / 'pairs'), '--out', str(tmp_path / 'o2')]) == 0
    assert 'EDSR reads the VIS image only; the NIR images of --nir are not used' in capsys.readouterr().out
    for name in 'ab':
        assert np.array_equal(_read16(tmp_path / 'o' / f'{name}.png'), _read16(tmp_path / 'o2' / f'{name}.png'))


def test_vis_only_tiles_give_the_untiled_image(tmp_path):
    """EDSR is convolutional: with a margin wider than its receptive field, tiles give the untiled output."""
    _, opt, ckpt = _model(tmp_path, 'EDSR')
    (vis, _), = _pairs(tmp_path / 'in')
    args = ['infer', '-opt', str(opt), '--model', str(ckpt), '--vis', str(vis), '--bits', '16', '--quiet']
    assert main(args + ['--out', str(tmp_path / 'whole.png')]) == 0
    assert main(args + ['--out', str(tmp_path / 'tiled.png'), '--tile', '8', '--tile-overlap', '8', '--ensemble']) == 0
    assert main(args + ['--out', str(tmp_path / 'whole_ens.png'), '--ensemble']) == 0
    whole, tiled = _read16(tmp_path / 'whole_ens.png'), _read16(tmp_path / 'tiled.png')
    assert np.abs(whole - tiled).max() <= 2 / 65535
    assert np.abs(whole - _read16(tmp_path / 'whole.png')).max() > 1e-3  # the ensemble is not a no-op


def _error(capsys, args) -> str:
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert 'Traceback' not in err and err.startswith('basicsr infer: error: ')
    return err


def test_cspsr_without_nir_is_a_clear_error(tmp_path, capsys):
    torch.save({'params': CSPSR(num_feat=8, num_dmf=1, upscale=2, max_disp=4).state_dict()}, tmp_path / 'c.pth')
    opt = tmp_path / 'c.yml'
    opt.write_text(yaml.safe_dump({'network_g': {'type': 'CSPSR', 'num_feat': 8, 'num_dmf': 1, 'upscale': 2,
                                                 'max_disp': 4}}))
    (vis, _), = _pairs(tmp_path / 'in')
    err = _error(capsys, ['infer', '-opt', str(opt), '--model', str(tmp_path / 'c.pth'), '--vis', str(vis),
                          '--out', str(tmp_path / 'out'), '--quiet'])
    assert f'{opt} builds a CSPSR' in err and 'pass --nir' in err and 'use a VIS-only model' in err
    assert not (tmp_path / 'out').exists()


def test_bad_input_for_vis_only_networks(tmp_path, capsys):
    _, opt, ckpt = _model(tmp_path, 'EDSR')
    (vis, nir), = _pairs(tmp_path / 'in')
    base = ['infer', '-opt', str(opt), '--model', str(ckpt), '--vis', str(vis), '--out', str(tmp_path / 'out'),
            '--quiet']
    err = _error(capsys, base + ['--nir', str(nir), '--disp', str(nir)])
    assert 'network_g:type EDSR, which reads the VIS image only. Remove --disp' in err
    err = _error(capsys, base + ['--scale', '2'])
    assert '--scale 2, but' in err and 'was trained for x4' in err and 'Use --scale 4' in err
    other = ARCH_REGISTRY.get('EDSR')(**{**NETS['EDSR'], 'num_feat': 8})
    torch.save({'params': other.state_dict()}, tmp_path / 'other.pth')
    err = _error(capsys, base[:4] + [str(tmp_path / 'other.pth')] + base[5:])
    assert 'does not fit network_g' in err and 'network_g:type EDSR' in err and 'first: conv_first.weight' in err
    disc = tmp_path / 'disc.yml'
    disc.write_text(yaml.safe_dump({'network_g': {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 8}}))
    torch.save({'params': ARCH_REGISTRY.get('VGGStyleDiscriminator')(3, 8).state_dict()}, tmp_path / 'disc.pth')
    err = _error(capsys, ['infer', '-opt', str(disc), '--model', str(tmp_path / 'disc.pth')] + base[5:])
    assert 'VGGStyleDiscriminator does not run on a (1, 3, h, w) RGB image' in err
    assert not (tmp_path / 'out').exists()


def test_onnx_export_tool_refuses_a_vis_only_network(tmp_path, capsys):
    from cspsr_arch.infer.onnx import export_checked
    _, opt, ckpt = _model(tmp_path, 'EDSR')
    assert export_checked(str(opt), str(ckpt), out=str(tmp_path / 'e.onnx')) == 2
    err = capsys.readouterr().err
    assert 'builds network_g:type EDSR: this tool exports CSPSR models' in err and 'torch.onnx.export' in err
    assert not (tmp_path / 'e.onnx').exists()
