"""Half precision: ``basicsr infer --half`` (bf16 where the hardware has it, refused where it is emulated), CSPSR's
parts that keep fp32 under autocast, and the released CSPSR in bf16 against fp32 on the real country test pairs."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import SHARED_COUNTRY

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.cli import main
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.infer.command import half_dtype

ROOT = Path(__file__).resolve().parents[2]


def test_the_half_type_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: False)
    with pytest.raises(CSPSRInputError, match='--half: this CPU has no bf16 instructions .* leave --half out'):
        half_dtype(torch.device('cpu'))
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: True)
    assert half_dtype(torch.device('cpu')) == torch.bfloat16
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda supported=supported: supported)
        assert half_dtype(torch.device('cuda')) == dtype


def test_matching_and_output_keep_fp32_under_autocast():
    torch.manual_seed(0)
    net = CSPSR(num_feat=8, num_dmf=2, max_disp=4).eval()
    lq, nir = torch.rand(1, 3, 16, 24), torch.rand(1, 1, 16, 24)
    with torch.no_grad():
        full = net(lq, nir)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            half = net(lq, nir)
            inside = net.branch_vis(lq)  # the body runs in bf16
    assert inside.dtype == torch.bfloat16
    assert half.sr.dtype == half.nir_sr.dtype == half.disp_l.dtype == torch.float32
    assert torch.equal(half.disp_l, full.disp_l) and torch.equal(half.disp_r, full.disp_r)  # the same matching
    assert 0 < (half.sr - full.sr).abs().max() < 0.02


def _tiny_model(folder: Path):
    torch.manual_seed(0)
    net = CSPSR(num_feat=8, num_dmf=1, cvm='none').eval()
    torch.save({'params': net.state_dict()}, folder / 'net.pth')
    (folder / 'opt.yml').write_text(yaml.safe_dump({'scale': 4, 'network_g': {'type': 'CSPSR', 'num_feat': 8,
                                                                             'num_dmf': 1, 'cvm': 'none'}}))
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / 'a_rgb.png'), cv2.GaussianBlur((rng.random((20, 28, 3)) * 255).astype(np.uint8), (3, 3), 0))
    cv2.imwrite(str(folder / 'a_nir.png'), (rng.random((20, 28)) * 255).astype(np.uint8))


def test_basicsr_infer_half(tmp_path, monkeypatch, capsys):
    _tiny_model(tmp_path)
    args = ['infer', '-opt', str(tmp_path / 'opt.yml'), '--model', str(tmp_path / 'net.pth'), '--vis',
            str(tmp_path / 'a_rgb.png'), '--nir', str(tmp_path / 'a_nir.png'), '--device', 'cpu', '--quiet']
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: False)
    assert main(args + ['--out', str(tmp_path / 'h.png'), '--half']) == 2
    assert 'no bf16 instructions' in capsys.readouterr().err and not (tmp_path / 'h.png').exists()
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: True)  # runs, emulated here
    assert main(args + ['--out', str(tmp_path / 'h.png'), '--half']) == 0
    assert ', bfloat16, ' in capsys.readouterr().out
    assert main(args + ['--out', str(tmp_path / 'f.png')]) == 0
    half, full = (cv2.imread(str(tmp_path / f'{n}.png')).astype(int) for n in ('h', 'f'))
    assert half.shape == full.shape == (80, 112, 3) and 0 < np.abs(half - full).max() <= 3


@pytest.mark.skipif(not SHARED_COUNTRY.is_dir(), reason=f'EPFL country pairs not found at {SHARED_COUNTRY}')
def test_the_released_cspsr_in_bf16_is_within_0_02_db_of_fp32(tmp_path):
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img

    from cspsr_arch.benchmark.presets import COUNTRY_TEST
    from cspsr_arch.infer.model import load_inference_model
    from cspsr_arch.release.country import camera_inputs, country_test_split
    split = country_test_split(SHARED_COUNTRY, list(COUNTRY_TEST), tmp_path)
    net = load_inference_model(str(ROOT / 'weights' / 'CSPSR_country_camera_x4.yml'),
                               str(ROOT / 'weights' / 'CSPSR_country_camera_x4.pth'))
    gains = []
    for sample in camera_inputs(split):
        with torch.no_grad():
            full = net(sample.lq, sample.lq_nir).sr
            with torch.autocast('cpu', dtype=torch.bfloat16):
                half = net(sample.lq, sample.lq_nir).sr
        gt = tensor2img(sample.gt)
        gains.append(calculate_psnr(tensor2img(half), gt, 4) - calculate_psnr(tensor2img(full), gt, 4))
    assert len(gains) == 12 and abs(np.mean(gains)) < 0.02 and max(abs(g) for g in gains) < 0.05, gains
