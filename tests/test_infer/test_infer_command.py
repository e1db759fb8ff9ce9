"""``basicsr infer``: untiled and tiled inference on a trained tiny CSPSR, self-ensemble, folders, PNG depths."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.cli import main
from cspsr_arch.infer.tiling import disparity_margins, input_window, super_resolve, tile_boxes

SCALE = 2
NET = {'num_feat': 8, 'num_dmf': 2, 'upscale': SCALE, 'max_disp': 4}
SHIFT = 3  # LR pixels of disparity in the test scenes


def stereo_scene(height: int, width: int, shift: int, seed: int):
    """HR left VIS (h, w, 3) RGB, HR right NIR (h, w, 1), in [0, 1]; NIR_r(y, x) = NIR_l(y, x + shift)."""
    rng = np.random.default_rng(seed)
    full = width + shift
    small = rng.random((height // 6 + 2, full // 6 + 2, 4)).astype(np.float32)
    scene = np.clip(cv2.resize(small, (full, height), interpolation=cv2.INTER_CUBIC), 0, 1)
    vis = scene[:, :width, :3]
    nir = (0.6 * scene[..., 1] + 0.4 * scene[..., 3])[:, shift:shift + width, None]
    return vis, nir


def lr_pair(height: int, width: int, seed: int):
    """LR VIS (RGB) and NIR of a scene with a disparity of SHIFT LR pixels, plus the HR VIS."""
    vis_hr, nir_hr = stereo_scene(SCALE * height, SCALE * width, SCALE * SHIFT, seed)
    down = lambda img: cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA).reshape(height, width, -1)
    return down(vis_hr), down(nir_hr), vis_hr


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).unsqueeze(0).float()


def write_pair(folder: Path, name: str, vis: np.ndarray, nir: np.ndarray, bits: int = 8):
    folder.mkdir(parents=True, exist_ok=True)
    peak, dtype = (255, np.uint8) if bits == 8 else (65535, np.uint16)
    q = lambda img: np.round(np.clip(img, 0, 1) * peak).astype(dtype)
    paths = folder / f'{name}_rgb.png', folder / f'{name}_nir.png'
    assert cv2.imwrite(str(paths[0]), q(vis[:, :, ::-1])) and cv2.imwrite(str(paths[1]), q(nir))
    return paths


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny CSPSR (learned CVM) trained for 60 Adam steps on synthetic x2 stereo scenes, saved as BasicSR does."""
    root = tmp_path_factory.mktemp('model')
    torch.manual_seed(0)
    net = CSPSR(**NET)
    scenes = [lr_pair(24, 32, seed) for seed in range(4)]
    lq = torch.cat([to_tensor(s[0]) for s in scenes])
    nir = torch.cat([to_tensor(s[1]) for s in scenes])
    gt = torch.cat([to_tensor(s[2]) for s in scenes])
    optim = torch.optim.Adam(net.parameters(), lr=2e-3)
    first = last = None
    for _ in range(60):
        optim.zero_grad()
        loss = F.mse_loss(net(lq, nir).sr, gt)
        loss.backward()
        optim.step()
        first = loss.item() if first is None else first
        last = loss.item()
    assert last < 0.7 * first  # it did learn something
    net.eval()
    torch.save({'params': net.state_dict()}, root / 'net_g.pth')
    opt = root / 'net.yml'
    opt.write_text(yaml.safe_dump({'name': 'tiny', 'scale': SCALE, 'network_g': {'type': 'CSPSR', **NET}}))
    return net, opt, root / 'net_g.pth'


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img.astype(np.float64) / (65535.0 if img.dtype == np.uint16 else 255.0)


def _infer(trained, out: Path, vis, nir, *extra) -> Path:
    _, opt, model = trained
    assert main(['infer', '-opt', str(opt), '--model', str(model), '--vis', str(vis), '--nir', str(nir),
                 '--out', str(out), '--quiet', *extra]) == 0
    return out


def test_tiles_cover_any_size_once():
    for height, width, tile in [(37, 53, 16), (1, 1, 8), (45, 67, 45), (100, 7, 9)]:
        hits = np.zeros((height, width), int)
        for box in tile_boxes(height, width, tile):
            assert 0 < box.y1 - box.y0 <= tile and 0 < box.x1 - box.x0 <= tile
            hits[box.y0:box.y1, box.x0:box.x1] += 1
        assert (hits == 1).all()
    assert tile_boxes(37, 53, None) == [(0, 37, 0, 53)]


def test_nir_window_covers_the_disparity_range():
    net = CSPSR(**NET)
    assert disparity_margins(net, None) == (NET['max_disp'] + 1, 1)  # min_disp 0: one column for bilinear
    core = tile_boxes(45, 67, 16)[6]  # an inner tile (3 rows x 5 columns)
    win = input_window(core, 45, 67, 8, disparity_margins(net, None))
    assert (core.y0 - win.y0, win.y1 - core.y1) == (8, 8)
    assert (core.x0 - win.x0, win.x1 - core.x1) == (8 + NET['max_disp'] + 1, 8 + 1)
    none = CSPSR(num_feat=8, num_dmf=1, upscale=SCALE, cvm='none')
    assert disparity_margins(none, None) == (0, 0)
    given = CSPSR(num_feat=8, num_dmf=1, upscale=SCALE, cvm='given')
    assert disparity_margins(given, torch.tensor([[[[-1.5, 6.2]]]])) == (8, 3)


@pytest.mark.parametrize('low, high', [(0.5, 4.5), (-3.5, -0.25), (-2.5, 3.25)])
@pytest.mark.parametrize('upscale, nir_scale, overlap', [(SCALE, 1, 0), (2, 2, 1), (4, 2, 1), (4, 4, 1)])
def test_the_nir_window_of_each_tile_is_the_crop_of_the_whole_warped_nir(low, high, upscale, nir_scale, overlap):
    """Inside a tile, the NIR the network warps to the VIS view equals the whole image's warped NIR there.

    With nir_scale f the NIR is cut at f x the window and warped at that resolution; the disparity, upscaled
    bilinearly to it, needs one LR row of context above and below the tile (overlap 1).
    """
    from cspsr_arch.infer.tiling import iter_windows
    torch.manual_seed(0)
    net = CSPSR(num_feat=4, num_dmf=1, upscale=upscale, cvm='given', nir_scale=nir_scale).eval()
    warped = []
    net.warp_nir.register_forward_hook(lambda module, args, out: warped.append(out))
    height, width, f = 20, 41, nir_scale
    vis, nir = torch.rand(1, 3, height, width), torch.rand(1, 1, f * height, f * width)
    ramp = torch.linspace(low, high, width).view(1, 1, 1, width) + torch.linspace(0, 0.5, height).view(1, 1, height, 1)
    disp = ramp.clamp(max=high).contiguous()
    super_resolve(net, vis, nir, disp)
    whole, whole_valid = warped.pop()
    assert whole.shape == nir.shape
    super_resolve(net, vis, nir, disp, tile=10, overlap=overlap)
    windows = list(iter_windows(height, width, 10, overlap, disparity_margins(net, disp)))
    assert len(warped) == len(windows) == 10
    for (core, win), (tile_nir, tile_valid) in zip(windows, warped):
        assert tile_nir.shape[-2:] == (f * (win.y1 - win.y0), f * (win.x1 - win.x0))
        inside = (..., slice(f * (core.y0 - win.y0), f * (core.y1 - win.y0)),
                  slice(f * (core.x0 - win.x0), f * (core.x1 - win.x0)))
        here = (..., slice(f * core.y0, f * core.y1), slice(f * core.x0, f * core.x1))
        assert torch.equal(tile_valid[inside], whole_valid[here]), core
        # float rounding of the sampling positions grows with the width in pixels: f x that of the LR warp
        assert (tile_nir[inside] - whole[here]).abs().max() < 1e-5 * f, ((tile_nir[inside] - whole[here]).abs().max(),
                                                                         core)


@pytest.mark.slow
def test_untiled_output_is_the_network_output(trained, tmp_path):
    net = trained[0]
    vis, nir, _ = lr_pair(37, 53, seed=10)  # sizes divisible by nothing
    files = write_pair(tmp_path / 'in', 'a', vis, nir)
    out = _infer(trained, tmp_path / 'out', *files, '--bits', '16')
    sr = _read(out / 'a.png')
    assert sr.shape == (SCALE * 37, SCALE * 53, 3)
    with torch.no_grad():
        ref = net(to_tensor(_read(files[0])[:, :, ::-1]), to_tensor(_read(files[1])[:, :, None])).sr
    ref = ref.clamp(0, 1)[0].permute(1, 2, 0).numpy()[:, :, ::-1]
    assert np.abs(sr - ref).max() <= 1 / 65535 + 1e-6


@pytest.mark.slow
def test_tiled_agrees_with_untiled_away_from_borders(trained, tmp_path):
    vis, nir, _ = lr_pair(45, 67, seed=11)
    files = write_pair(tmp_path / 'in', 'a', vis, nir)
    whole = _read(_infer(trained, tmp_path / 'whole', *files, '--bits', '16') / 'a.png')
    tiled = _read(_infer(trained, tmp_path / 'tiled', *files, '--bits', '16', '--tile', '16',
                         '--tile-overlap', '12') / 'a.png')
    assert len(tile_boxes(45, 67, 16)) == 15
    border = SCALE * 4
    diff = np.abs(whole - tiled)[border:-border, border:-border]
    psnr = 10 * np.log10(1 / np.mean(diff**2))
    assert psnr > 65 and diff.max() < 0.005, (psnr, diff.max())  # measured: 74 dB, 0.0016


@pytest.mark.slow
def test_tiles_without_the_disparity_margin_are_worse(trained, monkeypatch):
    """The NIR window margin is what keeps tiles faithful to the stereo geometry."""
    net = trained[0]
    vis, nir, _ = lr_pair(45, 67, seed=12)
    vis, nir = to_tensor(vis), to_tensor(nir)
    whole = super_resolve(net, vis, nir, bits=16).sr.astype(np.float64) / 65535
    with_margin = super_resolve(net, vis, nir, tile=16, overlap=2, bits=16).sr.astype(np.float64) / 65535
    import cspsr_arch.infer.tiling as inference
    monkeypatch.setattr(inference, 'disparity_margins', lambda net, disp: (0, 0))
    without = super_resolve(net, vis, nir, tile=16, overlap=2, bits=16).sr.astype(np.float64) / 65535
    err_with, err_without = np.abs(with_margin - whole).mean(), np.abs(without - whole).mean()
    assert err_with < 0.75 * err_without, (err_with, err_without)  # measured: 0.0018 vs 0.0030


@pytest.mark.slow
def test_vertical_flip_ensemble(trained, tmp_path):
    net = trained[0]
    vis, nir, _ = lr_pair(30, 41, seed=13)
    files = write_pair(tmp_path / 'in', 'a', vis, nir)
    out = _read(_infer(trained, tmp_path / 'out', *files, '--bits', '16', '--ensemble') / 'a.png')
    lq, lq_nir = to_tensor(_read(files[0])[:, :, ::-1]), to_tensor(_read(files[1])[:, :, None])
    with torch.no_grad():
        plain = net(lq, lq_nir).sr
        flipped = net(lq.flip(-2), lq_nir.flip(-2)).sr.flip(-2)
    ref = ((plain + flipped) / 2).clamp(0, 1)[0].permute(1, 2, 0).numpy()[:, :, ::-1]
    assert np.abs(out - ref).max() <= 1 / 65535 + 1e-6
    assert float((plain - flipped).abs().max()) > 1e-3  # the ensemble is not a no-op


@pytest.mark.slow
def test_folders_of_pairs_and_bit_depths(trained, tmp_path):
    pairs = {name: lr_pair(20 + i, 27 + 2 * i, seed=20 + i) for i, name in enumerate(('x', 'y'))}
    for name, (vis, nir, _) in pairs.items():
        write_pair(tmp_path / 'mixed', name, vis, nir)  # x_rgb.png + x_nir.png in one folder
        write_pair(tmp_path / 'deep', name, vis, nir, bits=16)
    out = _infer(trained, tmp_path / 'out8', tmp_path / 'mixed', tmp_path / 'mixed', '--save-nir')
    assert sorted(p.name for p in out.iterdir()) == ['x.png', 'x_nir.png', 'y.png', 'y_nir.png']
    x8 = cv2.imread(str(out / 'x.png'), cv2.IMREAD_UNCHANGED)
    assert x8.dtype == np.uint8 and x8.shape == (40, 54, 3)
    assert cv2.imread(str(out / 'x_nir.png'), cv2.IMREAD_UNCHANGED).shape == (40, 54)
    # 16-bit input: read as 16 bit, scaled to [0, 1]; the output is 16-bit too unless --bits says otherwise
    out16 = _infer(trained, tmp_path / 'out16', tmp_path / 'deep', tmp_path / 'deep')
    x16 = cv2.imread(str(out16 / 'x.png'), cv2.IMREAD_UNCHANGED)
    assert x16.dtype == np.uint16
    assert np.abs(x16 / 65535.0 - x8 / 255.0).max() < 0.03  # same picture, up to 8-bit input rounding
    # two folders matched by name
    for name in pairs:
        for kind in ('rgb', 'nir'):
            (tmp_path / kind).mkdir(exist_ok=True)
            (tmp_path / 'mixed' / f'{name}_{kind}.png').rename(tmp_path / kind / f'{name}.png')
    out2 = _infer(trained, tmp_path / 'out2', tmp_path / 'rgb', tmp_path / 'nir')
    assert np.array_equal(cv2.imread(str(out2 / 'x.png')), x8)


def test_given_disparity_model_with_disp_option(tmp_path):
    torch.manual_seed(1)
    net = CSPSR(num_feat=8, num_dmf=1, upscale=SCALE, cvm='given').eval()
    torch.save({'params': net.state_dict()}, tmp_path / 'g.pth')
    opt = tmp_path / 'g.yml'
    opt.write_text(yaml.safe_dump({'network_g': {'type': 'CSPSR', 'num_feat': 8, 'num_dmf': 1, 'upscale': SCALE,
                                                 'cvm': 'given'}}))
    vis, nir, _ = lr_pair(26, 35, seed=30)
    files = write_pair(tmp_path, 'a', vis, nir)
    disp = np.full((26, 35), SHIFT * 256, np.uint16)
    cv2.imwrite(str(tmp_path / 'a_disp.png'), disp)
    args = ['infer', '-opt', str(opt), '--model', str(tmp_path / 'g.pth'), '--vis', str(files[0]), '--nir',
            str(files[1]), '--quiet', '--bits', '16']
    assert main(args + ['--out', str(tmp_path / 'o.png'), '--disp', str(tmp_path / 'a_disp.png'),
                        '--tile', '12', '--tile-overlap', '10']) == 0
    lq, lq_nir = to_tensor(_read(files[0])[:, :, ::-1]), to_tensor(_read(files[1])[:, :, None])
    with torch.no_grad():
        ref = net(lq, lq_nir, torch.full((1, 1, 26, 35), float(SHIFT))).sr.clamp(0, 1)
    ref = ref[0].permute(1, 2, 0).numpy()[:, :, ::-1]
    diff = np.abs(_read(tmp_path / 'o.png') - ref)[8:-8, 8:-8]
    assert diff.mean() < 2e-3, diff.mean()


@pytest.mark.slow
def test_console_script(trained, tmp_path):
    _, opt, model = trained
    vis, nir, _ = lr_pair(16, 21, seed=40)
    files = write_pair(tmp_path, 'a', vis, nir)
    done = subprocess.run([str(Path(sys.executable).parent / 'basicsr'), 'infer', '-opt', str(opt), '--model',
                           str(model), '--vis', str(files[0]), '--nir', str(files[1]), '--out', str(tmp_path / 'o')],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'wrote 1 image(s)' in done.stdout
    assert cv2.imread(str(tmp_path / 'o' / 'a.png')).shape == (32, 42, 3)
