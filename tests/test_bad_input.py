"""Every row of the "Bad input and faults" table (docs/robustness.md, input side): a clear error, never wrong output."""
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
import torch
import yaml
from toy_data import dataset_opt

from cspsr_arch.archs.cross_spectral_stereo_arch import CrossSpectralStereoNet
from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.cli import main
from cspsr_arch.data.paired_cross_spectral_dataset import PairedCrossSpectralDataset
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.lmdb import create_lmdbs

NET = {'num_feat': 8, 'num_dmf': 1, 'upscale': 2, 'max_disp': 4}


@pytest.fixture
def model(tmp_path):
    """A tiny x2 CSPSR checkpoint and its options file."""
    torch.manual_seed(0)
    torch.save({'params': CSPSR(**NET).state_dict()}, tmp_path / 'net_g.pth')
    opt = tmp_path / 'net.yml'
    opt.write_text(yaml.safe_dump({'name': 'tiny', 'scale': 2, 'network_g': {'type': 'CSPSR', **NET}}))
    return opt, tmp_path / 'net_g.pth'


def _png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def _pair(folder: Path, name: str = 'a', size=(20, 26)):
    rng = np.random.default_rng(0)
    vis = _png(folder / f'{name}_rgb.png', rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    nir = _png(folder / f'{name}_nir.png', rng.integers(0, 256, size, dtype=np.uint8))
    return vis, nir


def _infer_error(capsys, model, vis, nir, *extra, model_path=None) -> str:
    opt, ckpt = model
    rc = main(['infer', '-opt', str(opt), '--model', str(model_path or ckpt), '--vis', str(vis), '--nir', str(nir),
               '--out', str(Path(vis).parent / 'out'), '--quiet', *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert 'Traceback' not in err and err.startswith('basicsr infer: error: ')
    assert not (Path(vis).parent / 'out').exists()  # nothing written
    return err


def test_missing_file(capsys, model, tmp_path):
    vis, _ = _pair(tmp_path)
    err = _infer_error(capsys, model, vis, tmp_path / 'nope_nir.png')
    assert f'--nir {tmp_path / "nope_nir.png"} does not exist' in err


def test_vis_nir_size_mismatch(capsys, model, tmp_path):
    vis, _ = _pair(tmp_path)
    nir = _png(tmp_path / 'b_nir.png', np.zeros((20, 25), np.uint8))
    err = _infer_error(capsys, model, vis, nir)
    assert f'{nir} is 25x20 (WxH) but {vis} is 26x20' in err and 'same size' in err


def test_nir_of_the_wrong_size_for_a_nir_scale_network(capsys, tmp_path):
    from basicsr.models import build_model
    torch.save({'params': CSPSR(**NET, nir_scale=2).state_dict()}, tmp_path / 'f.pth')
    opt = tmp_path / 'f.yml'
    opt.write_text(yaml.safe_dump({'network_g': {'type': 'CSPSR', **NET, 'nir_scale': 2}}))
    vis, nir = _pair(tmp_path)  # the NIR at the VIS size
    err = _infer_error(capsys, (opt, tmp_path / 'f.pth'), vis, nir)
    assert (f'{nir} is 26x20 (WxH) but {vis} is 26x20: this network takes its NIR at nir_scale (2) x the VIS size, '
            'so the NIR must be 52x40.') in err
    model_opt = {'model_type': 'CSPSRModel', 'network_g': {'type': 'CSPSR', **NET, 'nir_scale': 2},
                 'datasets': {'val': {'name': 'v'}}}
    with pytest.raises(CSPSRInputError, match='Set datasets:val:nir_scale: 2.'):
        build_model(model_opt)


def test_nir_with_three_unequal_channels(capsys, model, tmp_path):
    vis, nir = _pair(tmp_path)
    err = _infer_error(capsys, model, vis, vis)  # VIS given as NIR: the usual cause
    assert f'{vis}: the NIR image has 3 channels that differ' in err and 'swapped' in err
    equal = _png(tmp_path / 'c_nir.png', np.repeat(cv2.imread(str(nir), cv2.IMREAD_UNCHANGED)[:, :, None], 3, 2))
    assert main(['infer', '-opt', str(model[0]), '--model', str(model[1]), '--vis', str(vis), '--nir', str(equal),
                 '--out', str(tmp_path / 'ok'), '--quiet']) == 0  # three equal channels are one NIR channel


def test_16_bit_input_is_read_as_16_bit(model, tmp_path):
    vis8, nir8 = _pair(tmp_path / 'eight')
    vis16 = _png(tmp_path / 'deep' / 'a_rgb.png', cv2.imread(str(vis8), cv2.IMREAD_UNCHANGED).astype(np.uint16) * 257)
    outs = {}
    for name, vis in (('eight', vis8), ('deep', vis16)):
        assert main(['infer', '-opt', str(model[0]), '--model', str(model[1]), '--vis', str(vis), '--nir', str(nir8),
                     '--out', str(tmp_path / f'{name}.png'), '--quiet']) == 0
        outs[name] = cv2.imread(str(tmp_path / f'{name}.png'), cv2.IMREAD_UNCHANGED)
    assert outs['eight'].dtype == np.uint8 and outs['deep'].dtype == np.uint16  # output depth follows the VIS input
    # x * 257 / 65535 == x / 255: the same values reach the network
    assert np.abs(outs['deep'] / 65535.0 - outs['eight'] / 255.0).max() <= 0.5 / 255 + 1e-6


def test_grayscale_vis(capsys, model, tmp_path):
    _, nir = _pair(tmp_path)
    gray = _png(tmp_path / 'g_rgb.png', np.zeros((20, 26), np.uint8))
    err = _infer_error(capsys, model, gray, nir)
    assert f'{gray}: the VIS image must have 3 channels, got 1' in err and 'colour' in err


def test_swapped_vis_and_nir_are_named_on_both_sides(capsys, model, tmp_path):
    vis, nir = _pair(tmp_path)
    colour = cv2.imread(str(vis), cv2.IMREAD_UNCHANGED)
    colour[..., 0] = 255 - colour[..., 2]  # channels that differ, as in a real colour image
    vis = _png(tmp_path / 'c_rgb.png', colour)
    err = _infer_error(capsys, model, nir, vis)  # --vis gets the NIR image, --nir the colour one
    assert f'{nir}: the VIS image must have 3 channels, got 1. It looks like a NIR image' in err
    assert '--vis and --nir' in err and 'not swapped' in err
    from cspsr_arch.image_io import decode
    from cspsr_arch.errors import CSPSRInputError
    with pytest.raises(CSPSRInputError, match=r'3 channels that differ, like a colour image: check that the VIS and '
                                              r'NIR files \(--vis and --nir\) are not swapped'):
        decode(vis.read_bytes(), str(vis), 'nir')


@pytest.mark.parametrize('damage', ['truncated', 'garbage'])
def test_corrupt_or_truncated_png(capsys, model, tmp_path, damage):
    vis, nir = _pair(tmp_path, size=(64, 80))
    data = vis.read_bytes()
    vis.write_bytes(data[:len(data) // 2] if damage == 'truncated' else b'not an image' * 10)
    err = _infer_error(capsys, model, vis, nir)
    assert f'{vis}: not a readable image (corrupt or truncated file?)' in err


def test_empty_folder(capsys, model, tmp_path):
    (tmp_path / 'vis').mkdir()
    _pair(tmp_path / 'nir')
    (tmp_path / 'vis' / 'notes.txt').write_text('not an image')
    err = _infer_error(capsys, model, tmp_path / 'vis', tmp_path / 'nir')
    assert f'--vis {tmp_path / "vis"} holds no images' in err


def test_unmatched_names_in_folders(capsys, model, tmp_path):
    _pair(tmp_path / 'pairs', 'a')
    _pair(tmp_path / 'pairs', 'b')
    (tmp_path / 'pairs' / 'b_nir.png').rename(tmp_path / 'pairs' / 'c_nir.png')
    err = _infer_error(capsys, model, tmp_path / 'pairs', tmp_path / 'pairs')
    assert '1 VIS image(s) have no NIR partner' in err and 'first: b_rgb.png' in err
    assert '1 NIR image(s) have no VIS partner' in err and 'first: c_nir.png' in err


@pytest.mark.parametrize('other', ['edsr', 'stereo'])
def test_checkpoint_of_another_arch(capsys, model, tmp_path, other):
    from basicsr.archs.edsr_arch import EDSR
    net = EDSR(3, 3, num_feat=16, num_block=2, upscale=2) if other == 'edsr' else CrossSpectralStereoNet(max_disp=4)
    torch.save({'params': net.state_dict()}, tmp_path / 'other.pth')
    vis, nir = _pair(tmp_path)
    err = _infer_error(capsys, model, vis, nir, model_path=tmp_path / 'other.pth')
    assert 'does not fit network_g' in err and 'Pass the options file the checkpoint was trained with' in err
    assert ('not a CSPSR checkpoint' if other == 'edsr' else 'CrossSpectralStereoNet (disparity only)') in err
    assert len(err) < 700 and err.count('.weight') <= 3  # a sentence, not a state-dict key dump


def test_checkpoint_of_another_scale(capsys, model, tmp_path):
    torch.save({'params_ema': CSPSR(**{**NET, 'upscale': 4}).state_dict()}, tmp_path / 'x4.pth')
    vis, nir = _pair(tmp_path)
    err = _infer_error(capsys, model, vis, nir, model_path=tmp_path / 'x4.pth')
    assert 'the options build a CSPSR (x2, num_feat 8, num_dmf 1, cvm learned)' in err
    assert 'the file is a CSPSR checkpoint (x4, num_feat 8, num_dmf 1, cvm learned)' in err
    assert 'weights: 4 of another shape' in err  # the two pixel-shuffle heads (weight and bias)


def test_corrupt_checkpoint(capsys, model, tmp_path):
    data = model[1].read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 3])
    vis, nir = _pair(tmp_path)
    err = _infer_error(capsys, model, vis, nir, model_path=tmp_path / 'cut.pth')
    assert f'{tmp_path / "cut.pth"} is not a readable PyTorch checkpoint (corrupt or truncated file?)' in err


def test_misspelled_option_key(capsys, model, tmp_path):
    opt = yaml.safe_load(model[0].read_text())
    opt['network_g']['num_fet'] = opt['network_g'].pop('num_feat')
    bad = tmp_path / 'bad.yml'
    bad.write_text(yaml.safe_dump(opt))
    vis, nir = _pair(tmp_path)
    err = _infer_error(capsys, (bad, model[1]), vis, nir)
    assert "Unknown option 'network_g:num_fet'. Did you mean 'num_feat'?" in err


def test_scale_the_checkpoint_was_not_trained_for(capsys, model, tmp_path):
    vis, nir = _pair(tmp_path)
    err = _infer_error(capsys, model, vis, nir, '--scale', '4')
    assert '--scale 4, but' in err and 'was trained for x2' in err and 'Use --scale 2' in err


def test_given_disparity_model_without_disp(capsys, tmp_path):
    torch.save({'params': CSPSR(**{**NET, 'cvm': 'given'}).state_dict()}, tmp_path / 'g.pth')
    opt = tmp_path / 'g.yml'
    opt.write_text(yaml.safe_dump({'network_g': {'type': 'CSPSR', **NET, 'cvm': 'given'}}))
    vis, nir = _pair(tmp_path)
    err = _infer_error(capsys, (opt, tmp_path / 'g.pth'), vis, nir)
    assert 'cvm: given' in err and 'pass --disp' in err


def test_missing_lmdb_key(toy_split):
    """A key listed in meta_info.txt but absent from one LMDB (a partly written database)."""
    split, _ = toy_split
    create_lmdbs(str(split), progress=False)
    nir_lmdb = split.parent / 'train_lmdb' / 'LR_bicubic' / 'X2' / 'NIR.lmdb'
    env = lmdb.open(str(nir_lmdb), map_size=1 << 24)
    with env.begin(write=True) as txn:
        assert txn.delete(b'b')
    env.close()
    dataset = PairedCrossSpectralDataset(dataset_opt(split, scale=2, lmdb=True))
    assert dataset[0]['lq_nir'].shape == (1, 24, 28)  # key 'a' is fine
    with pytest.raises(CSPSRInputError, match=r"NIR\.lmdb\[b\]: missing \(no such file, or no such key in the LMDB\)"):
        dataset[1]


def test_checkpoint_of_an_older_cspsr_names_a_differing_layer(capsys, model, tmp_path):
    state = torch.load(model[1], weights_only=True)['params']
    state['dmfs.0.conv_nir.weight'] = torch.zeros(8, 8, 3, 3)  # as before the 1x1 NIR convolution
    torch.save({'params': state}, tmp_path / 'old.pth')
    vis, nir = _pair(tmp_path)
    err = _infer_error(capsys, model, vis, nir, model_path=tmp_path / 'old.pth')
    assert 'weights: 1 of another shape, first: dmfs.0.conv_nir.weight' in err
