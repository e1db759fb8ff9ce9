"""``basicsr infer --model any.pth`` without ``-opt``: single-image SR checkpoints of other projects that spandrel
recognises (small random networks saved here: no third-party weights), and the ones it refuses."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from spandrel.architectures.Compact import Compact
from spandrel.architectures.DnCNN import DnCNN
from spandrel.architectures.SwinIR import SwinIR

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.cli import main
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.infer.external import load_external_model


@pytest.fixture(scope='module')
def zoo(tmp_path_factory) -> Path:
    """Checkpoints as other projects save them: a bare state dict, and BasicSR's ``{'params': ...}``."""
    root = tmp_path_factory.mktemp('zoo')
    torch.manual_seed(0)
    torch.save(Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=4, upscale=4).state_dict(), root / 'compact.pth')
    swinir = SwinIR(upscale=2, img_size=16, window_size=4, embed_dim=12, depths=[2], num_heads=[2], mlp_ratio=2,
                    upsampler='pixelshuffle')
    torch.save({'params': swinir.state_dict()}, root / 'swinir_x2.pth')
    torch.save(DnCNN(in_nc=3, out_nc=3, nc=16, nb=5).state_dict(), root / 'dncnn.pth')
    torch.save({'params': CSPSR(num_feat=8, num_dmf=1, cvm='none').state_dict()}, root / 'cspsr.pth')
    (root / 'notes.pth').write_bytes(b'not a checkpoint')
    rng = np.random.default_rng(0)
    cv2.imwrite(str(root / 'a_rgb.png'), (rng.random((13, 19, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(root / 'a_nir.png'), (rng.random((13, 19)) * 255).astype(np.uint8))
    return root


def _direct(net, image: Path) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
    with torch.no_grad():
        out = net(torch.from_numpy(rgb.transpose(2, 0, 1) / 255.0).float()[None])
    out = out.sr if hasattr(out, 'sr') else out
    return cv2.cvtColor((out[0].clamp(0, 1).numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8),
                        cv2.COLOR_RGB2BGR)


@pytest.mark.parametrize('name, arch, scale', [('compact.pth', 'RealESRGAN Compact', 4), ('swinir_x2.pth', 'SwinIR', 2)])
def test_a_recognised_checkpoint_runs_without_options(zoo, tmp_path, capsys, name, arch, scale):
    out = tmp_path / 'sr.png'
    assert main(['infer', '--model', str(zoo / name), '--vis', str(zoo / 'a_rgb.png'), '--nir', str(zoo / 'a_nir.png'),
                 '--out', str(out), '--quiet']) == 0
    printed = capsys.readouterr().out
    assert f'{arch} reads the VIS image only' in printed and f'({arch} x{scale}, untiled' in printed
    result = cv2.imread(str(out))
    assert result.shape == (13 * scale, 19 * scale, 3)
    net = load_external_model(str(zoo / name))
    assert (net.upscale, net.arch, net.cvm) == (scale, arch, 'none')
    assert np.abs(result.astype(int) - _direct(net, zoo / 'a_rgb.png')).max() <= 1


def test_inputs_below_the_architectures_minimum_are_padded_and_cropped_back(zoo):
    net = load_external_model(str(zoo / 'swinir_x2.pth'))  # SwinIR of window 4 here needs at least 16 pixels
    inner = net.net.net
    lq = torch.rand(1, 3, 13, 19)
    with torch.no_grad():
        padded = torch.nn.functional.pad(lq, (0, 0, 0, 3), mode='reflect')  # 13 -> 16 rows, 19 columns fit
        assert torch.allclose(net(lq).sr, inner(padded)[..., :26, :38])


@pytest.mark.parametrize('name, message', [
    ('dncnn.pth', r'is a DnCNN checkpoint for Restoration at x1, not super-resolution'),
    ('cspsr.pth', r'spandrel does not recognise this checkpoint.*pass -opt with the options file it trained with'),
    ('notes.pth', r'cannot be loaded as a model checkpoint'),
    ('missing.pth', r'missing\.pth does not exist'),
])
def test_what_is_not_a_single_image_sr_checkpoint_is_refused_in_one_line(zoo, capsys, name, message):
    with pytest.raises(CSPSRInputError, match=message):
        load_external_model(str(zoo / name))
    assert main(['infer', '--model', str(zoo / name), '--vis', str(zoo / 'a_rgb.png'), '--out', str(zoo / 'x.png')]) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1


def test_the_scale_and_the_missing_model_are_named(zoo, capsys):
    with pytest.raises(CSPSRInputError, match=r'--scale 4, but .*swinir_x2\.pth is a x2 SwinIR network'):
        load_external_model(str(zoo / 'swinir_x2.pth'), scale=4)
    assert main(['infer', '--vis', str(zoo / 'a_rgb.png'), '--out', str(zoo / 'x.png')]) == 2
    assert 'or --model alone for a single-image SR checkpoint of another project' in capsys.readouterr().err


def test_the_benchmark_scores_an_external_checkpoint_as_a_row(zoo, tmp_path):
    from toy_data import make_toy_split

    from cspsr_arch.benchmark.aggregate import paired_rows
    from cspsr_arch.benchmark.evaluation import evaluate
    from cspsr_arch.benchmark.external import evaluate_external, parse_external
    split = tmp_path / 'data' / 'test'
    make_toy_split(split, keys=('a', 'b'), size=32, scales=(4, ))
    assert parse_external([f'Compact={zoo / "compact.pth"}']) == {'Compact': zoo / 'compact.pth'}
    for bad, message in (('Compact', 'expected NAME=path.pth'), (f'EDSR={zoo / "compact.pth"}', 'already a row'),
                         (f'X={tmp_path / "none.pth"}', 'is not a file')):
        with pytest.raises(CSPSRInputError, match=message):
            parse_external([bad])
    first = evaluate_external('Compact', zoo / 'compact.pth', tmp_path, 'toy', split, 4, tmp_path / 'images')
    assert set(first['images']) == {'a', 'b'} and (tmp_path / 'images' / 'a_Compact.png').is_file()
    net = load_external_model(str(zoo / 'compact.pth'))
    gt = cv2.imread(str(split / 'HR' / 'VIS' / 'a.png'))
    from cspsr_arch.benchmark.evaluation import scores
    assert first['images']['a']['psnr'] == pytest.approx(scores(_direct(net, split / 'LR_bicubic' / 'X4' / 'VIS' / 'a.png'),
                                                                gt, 4)['psnr'], abs=1e-6)
    camera = evaluate_external('Compact', zoo / 'compact.pth', tmp_path, 'toy', split, 4, None, {})
    assert camera['psnr'] != first['psnr']  # the camera protocol's degraded inputs
    assert evaluate_external('Compact', zoo / 'compact.pth', tmp_path, 'toy', split, 4, None) == first  # cached
    with pytest.raises(CSPSRInputError, match='is a x2 SwinIR network'):
        evaluate_external('SwinIR', zoo / 'swinir_x2.pth', tmp_path, 'toy', split, 4, None)
    table = {'bicubic': evaluate(None, tmp_path, 'toy', split, 4, None), 'EDSR': first, 'Compact': first}
    paired_rows(table)  # an external row pairs with the others like a trained one
    assert table['Compact']['vs_EDSR']['mean_db'] == 0.0
