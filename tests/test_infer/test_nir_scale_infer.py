"""``basicsr infer`` and the ONNX export with a network whose NIR enters at nir_scale x the VIS size."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.cli import main
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.infer.pairs import Pair, load_pair
from cspsr_arch.infer.tiling import super_resolve, tile_boxes

SCALE = 2
NET = {'num_feat': 8, 'num_dmf': 2, 'upscale': SCALE, 'max_disp': 4, 'nir_scale': SCALE}


def _save(root: Path, net_opt: dict, name: str = 'net'):
    torch.manual_seed(0)
    net = CSPSR(**net_opt)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    net.eval()
    torch.save({'params': net.state_dict()}, root / f'{name}.pth')
    opt = root / f'{name}.yml'
    opt.write_text(yaml.safe_dump({'name': 'tiny', 'scale': net_opt['upscale'],
                                   'network_g': {'type': 'CSPSR', **net_opt}}))
    return net, opt, root / f'{name}.pth'


def _pair(folder: Path, height: int, width: int, nir_scale: int = SCALE, seed: int = 0):
    """A smooth random LR VIS and a NIR at nir_scale x its size, 8-bit PNGs."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def smooth(h: int, w: int, c: int) -> np.ndarray:
        small = rng.random((h // 3 + 2, w // 3 + 2, c)).astype(np.float32)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, c)

    vis = np.clip(smooth(height, width, 3) * 255, 0, 255).astype(np.uint8)
    nir = np.clip(smooth(nir_scale * height, nir_scale * width, 1) * 255, 0, 255).astype(np.uint8)
    paths = folder / 'a_rgb.png', folder / 'a_nir.png'
    assert cv2.imwrite(str(paths[0]), vis) and cv2.imwrite(str(paths[1]), nir)
    return paths


def _tensor(path: Path, rgb: bool) -> torch.Tensor:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
    img = img[:, :, ::-1] if rgb else img[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).unsqueeze(0)


def _read16(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint16, path
    return img.astype(np.float64) / 65535


def _infer(opt: Path, model: Path, vis: Path, nir: Path, out: Path, *extra) -> Path:
    assert main(['infer', '-opt', str(opt), '--model', str(model), '--vis', str(vis), '--nir', str(nir),
                 '--out', str(out), '--quiet', '--bits', '16', *extra]) == 0
    return out / 'a.png'


def _as_image(sr: torch.Tensor) -> np.ndarray:
    return sr.clamp(0, 1)[0].permute(1, 2, 0).numpy()[:, :, ::-1].astype(np.float64)


def test_infer_with_the_nir_at_the_output_size_writes_the_network_output(tmp_path):
    net, opt, model = _save(tmp_path, NET)
    vis, nir = _pair(tmp_path / 'in', 13, 19)
    sr = _read16(_infer(opt, model, vis, nir, tmp_path / 'out', '--save-nir'))
    assert sr.shape == (26, 38, 3)
    with torch.no_grad():
        ref = net(_tensor(vis, True), _tensor(nir, False))
    assert np.abs(sr - _as_image(ref.sr)).max() <= 1 / 65535 + 1e-6
    nir_sr = _read16(tmp_path / 'out' / 'a_nir.png')
    assert np.abs(nir_sr - ref.nir_sr.clamp(0, 1)[0, 0].numpy()).max() <= 1 / 65535 + 1e-6


def test_vertical_flip_ensemble_with_a_fine_nir(tmp_path):
    net, opt, model = _save(tmp_path, NET)
    vis, nir = _pair(tmp_path / 'in', 12, 17, seed=1)
    out = _read16(_infer(opt, model, vis, nir, tmp_path / 'out', '--ensemble'))
    lq, lq_nir = _tensor(vis, True), _tensor(nir, False)
    with torch.no_grad():
        plain = net(lq, lq_nir).sr
        flipped = net(lq.flip(-2), lq_nir.flip(-2)).sr.flip(-2)
    assert np.abs(out - _as_image((plain + flipped) / 2)).max() <= 1 / 65535 + 1e-6
    assert float((plain - flipped).abs().max()) > 1e-3  # the ensemble is not a no-op


@pytest.mark.parametrize('upscale, nir_scale', [(2, 2), (4, 2)])
def test_tiled_equals_untiled_without_global_pooling(tmp_path, upscale, nir_scale):
    """Without CSFT (whose channel attention pools over the whole input) every output pixel sees a bounded
    neighbourhood: with an overlap beyond it, the tiles, their NIR cut at nir_scale x the window, give the
    untiled output."""
    net_opt = {**NET, 'upscale': upscale, 'nir_scale': nir_scale, 'use_csft': False}
    net, _, _ = _save(tmp_path, net_opt)
    vis, nir = _pair(tmp_path / 'in', 26, 37, nir_scale, seed=2)
    lq, lq_nir = _tensor(vis, True), _tensor(nir, False)
    whole = super_resolve(net, lq, lq_nir, bits=16, with_nir=True)
    tiled = super_resolve(net, lq, lq_nir, tile=13, overlap=24, bits=16, with_nir=True)
    assert len(tile_boxes(26, 37, 13)) == 6
    assert np.abs(whole.sr.astype(int) - tiled.sr.astype(int)).max() <= 1  # equal up to 16-bit rounding
    assert np.abs(whole.nir_sr.astype(int) - tiled.nir_sr.astype(int)).max() <= 1
    short = super_resolve(net, lq, lq_nir, tile=13, overlap=2, bits=16)  # too little context: not equal
    assert np.abs(whole.sr.astype(int) - short.sr.astype(int)).max() > 30


def test_a_nir_of_the_wrong_size_is_a_one_line_error(tmp_path, capsys):
    _, opt, model = _save(tmp_path, NET)
    vis, nir = _pair(tmp_path / 'in', 13, 19, nir_scale=1)  # the NIR at the VIS size
    rc = main(['infer', '-opt', str(opt), '--model', str(model), '--vis', str(vis), '--nir', str(nir), '--out',
               str(tmp_path / 'out'), '--quiet'])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith('basicsr infer: error: ') and len(err.strip().splitlines()) == 1
    assert (f'{nir} is 19x13 (WxH) but {vis} is 19x13: this network takes its NIR at nir_scale (2) x the VIS size, '
            'so the NIR must be 38x26.') in err
    assert not (tmp_path / 'out').exists()


def test_load_pair_checks_the_nir_at_nir_scale_and_the_disparity_at_the_vis_size(tmp_path):
    vis, nir = _pair(tmp_path, 5, 7, nir_scale=4)
    loaded = load_pair(Pair('a', str(vis), str(nir)), torch.device('cpu'), 4)
    assert loaded.vis.shape == (1, 3, 5, 7) and loaded.nir.shape == (1, 1, 20, 28)
    with pytest.raises(CSPSRInputError, match=r'NIR at nir_scale \(2\) x the VIS size, so the NIR must be 14x10'):
        load_pair(Pair('a', str(vis), str(nir)), torch.device('cpu'), 2)
    disp = tmp_path / 'a_disp.png'
    cv2.imwrite(str(disp), np.zeros((20, 28), np.uint16))  # a disparity stays at the VIS size
    with pytest.raises(CSPSRInputError, match='VIS and DISP of a pair must have the same size'):
        load_pair(Pair('a', str(vis), str(nir), str(disp)), torch.device('cpu'), 4)


@pytest.mark.slow
def test_onnx_export_takes_the_nir_at_nir_scale(tmp_path, capsys):
    import onnx

    from cspsr_arch.infer.onnx import export_checked
    net_opt = {**NET, 'upscale': 4, 'nir_scale': 2}
    _, opt, model = _save(tmp_path, net_opt)
    rc = export_checked(str(opt), str(model), out=str(tmp_path / 'm.onnx'), check_size=(13, 21),
                        json_path=str(tmp_path / 'f.json'))
    assert rc == 0, capsys.readouterr().err
    figures = json.loads((tmp_path / 'f.json').read_text())
    assert set(figures['max_abs_diff']) == {'sr', 'nir_sr', 'disp_l'} and max(figures['max_abs_diff'].values()) < 1e-4
    graph = onnx.load(str(tmp_path / 'm.onnx')).graph
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input]
    assert dims == [[1, 3, 'height', 'width'], [1, 1, '2*height', '2*width']]


def test_a_checkpoint_of_another_nir_scale_is_described(tmp_path):
    from cspsr_arch.infer.model import load_inference_model
    _, _, model = _save(tmp_path, {**NET, 'upscale': 4, 'nir_scale': 4})
    _, plain_opt, _ = _save(tmp_path, {**NET, 'upscale': 4, 'nir_scale': 1}, name='plain')
    with pytest.raises(CSPSRInputError, match=r'the options build a CSPSR \(x4, num_feat 8, num_dmf 2, cvm learned\), '
                       r'the file is a CSPSR checkpoint \(x4, num_feat 8, num_dmf 2, cvm learned, nir_scale 4\); '
                       r'weights: 1 of another shape\. '):
        load_inference_model(str(plain_opt), str(model))
