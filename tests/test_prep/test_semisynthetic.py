"""tools/make_semisynthetic_rgbnir.py (:mod:`cspsr_arch.prep.semisynthetic`): real pairs + generated disparity -> stereo set; registration check."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize
from conftest import SHARED_REAL

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep import commands, semisynthetic

H, W = 240, 320


@pytest.fixture(scope='module')
def tool():
    return semisynthetic


def _pair(rng: np.random.Generator, shift: int = 0):
    """A textured VIS image and its NIR (another channel mix plus texture of its own), NIR moved by ``shift``."""
    canvas = cv2.resize(rng.random((30, 42, 3)).astype(np.float32), (W + 16, H), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        y, x = rng.integers(0, H - 40), rng.integers(0, W - 40)
        canvas[y:y + rng.integers(10, 40), x:x + rng.integers(10, 40)] = rng.random(3)
    own = cv2.resize(rng.random((60, 84)).astype(np.float32), (W + 16, H), interpolation=cv2.INTER_CUBIC)
    nir = np.clip(0.5 * canvas[..., 2] + 0.3 * canvas[..., 1] + 0.2 * own, 0, 1)
    vis = canvas[:, 8:8 + W]
    nir = nir[:, 8 + shift:8 + shift + W]
    return (np.clip(vis, 0, 1) * 255).round().astype(np.uint8), (nir * 255).round().astype(np.uint8)


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp('pairs')
    rng = np.random.default_rng(0)
    for name, shift in (('alpha', 0), ('beta', 0), ('gamma', 0), ('shifted', 6)):
        vis, nir = _pair(rng, shift)
        cv2.imwrite(str(folder / f'{name}_rgb.png'), vis)
        cv2.imwrite(str(folder / f'{name}_nir.png'), nir)
    return folder


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def test_registration_check_finds_the_shifted_pair(tool, pairs, tmp_path):
    for name in ('alpha', 'beta', 'shifted'):
        figures = tool.measure_misalignment(_read(pairs / f'{name}_rgb.png'), _read(pairs / f'{name}_nir.png'))
        assert figures['tiles'] >= 8
        if name == 'shifted':
            assert figures['shift_x'] == pytest.approx(-6, abs=0.5) and figures['misalignment'] > 5
        else:
            assert figures['misalignment'] < 2.0, (name, figures)
    with pytest.raises(CSPSRInputError, match=r'shifted_nir\.png .*--misaligned register.*skip'):
        tool.build_dataset(pairs, tmp_path / 'out', scales=(4, ))
    assert not (tmp_path / 'out').exists()  # nothing written before the check


def test_semisynthetic_layout_geometry_and_split(tool, pairs, tmp_path):
    out = tmp_path / 'semi'
    keys, infos = tool.build_dataset(pairs, out, scales=(2, 4), seed=1, test_scenes=['beta'], variants=2,
                                     misaligned='skip')
    assert keys == {'train': ['alpha_v0', 'alpha_v1', 'gamma_v0', 'gamma_v1'], 'test': ['beta']}
    assert [i['key'] for i in infos if i['skipped']] == ['shifted']
    meta = (out / 'train' / 'meta_info.txt').read_text().split('\n')
    assert meta[0] == f'alpha_v0.png ({H},{W},3)'
    src_vis, src_nir = _read(pairs / 'alpha_rgb.png'), _read(pairs / 'alpha_nir.png')
    for key, flip in (('alpha_v0', False), ('alpha_v1', True)):
        hr = {s: _read(out / 'train' / 'HR' / s / f'{key}.png') for s in ('VIS', 'NIR', 'DISP_L', 'DISP_R')}
        expect_vis, nir_left = (src_vis[:, ::-1], src_nir[:, ::-1]) if flip else (src_vis, src_nir)
        assert np.array_equal(hr['VIS'], expect_vis)  # the real VIS image, untouched
        d_l, d_r = hr['DISP_L'] / 256.0, hr['DISP_R'] / 256.0
        assert 0 <= d_l.min() and 0.02 * W < d_l.max() <= 44 / 480 * W + 1e-6 and d_r.min() >= 0
        # NIR_l(y, x) = NIR_r(y, x - d_l): the right view warped back is the real NIR where both views see it
        ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
        back = cv2.remap(hr['NIR'].astype(np.float32), xs - d_l.astype(np.float32), ys, cv2.INTER_LINEAR)
        seen = np.take_along_axis(d_r, np.clip(np.round(xs - d_l).astype(int), 0, W - 1), 1)
        visible = (xs - d_l >= 1) & (np.abs(seen - d_l) < 0.5)
        assert visible.mean() > 0.8
        err = np.abs(back - nir_left)[visible]
        assert np.median(err) < 2.0 and err.mean() < 4.0, key
        assert np.abs(hr['NIR'].astype(float) - nir_left).mean() > 3 * err.mean()  # the views do differ
        for s in (2, 4):
            lr = _read(out / 'train' / 'LR_bicubic' / f'X{s}' / 'VIS' / f'{key}.png')
            ref = np.round(np.clip(imresize(hr['VIS'].astype(np.float32) / 255, 1 / s), 0, 1) * 255)
            assert lr.shape == (H // s, W // s, 3) and np.abs(lr - ref).max() <= 1
            lr_d = _read(out / 'train' / 'LR_bicubic' / f'X{s}' / 'DISP_L' / f'{key}.png') / 256.0
            assert lr_d.max() == pytest.approx(d_l.max() / s, rel=0.1)
    again, _ = tool.build_dataset(pairs, tmp_path / 'again', scales=(2, 4), seed=1, test_scenes=['beta'],
                                  variants=2, misaligned='skip')
    assert again == keys
    assert (tmp_path / 'again' / 'train' / 'HR' / 'NIR' / 'alpha_v1.png').read_bytes() == \
        (out / 'train' / 'HR' / 'NIR' / 'alpha_v1.png').read_bytes()  # deterministic


def test_command_line_errors_are_clear(tool, pairs, tmp_path, capsys):
    assert commands.make_semisynthetic_rgbnir(['--input', str(tmp_path / 'none'), '--out', str(tmp_path / 'o')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert commands.make_semisynthetic_rgbnir(['--input', str(pairs), '--out', str(tmp_path / 'o'), '--misaligned',
                                               'skip', '--test-scenes', 'shifted']) == 2
    assert 'not among the usable pairs' in capsys.readouterr().err
    assert commands.make_semisynthetic_rgbnir(['--input', str(pairs), '--out', str(tmp_path / 'o'), '--misaligned',
                                               'keep', '--scales', '4', '--variants', '1', '--max-size', '160']) == 0
    printed = capsys.readouterr().out
    assert 'KEPT although not registered' in printed and 'wrote train: 3, test: 1' in printed
    assert _read(tmp_path / 'o' / 'test' / 'HR' / 'VIS' / 'shifted.png').shape == (120, 160, 3)  # default split


@pytest.mark.skipif(not SHARED_REAL.is_dir(), reason=f'real RGB-NIR pairs not found at {SHARED_REAL}')
def test_real_pairs_registration(tool):
    found = {}
    for rgb in sorted(SHARED_REAL.glob('*_rgb.png')):
        name = rgb.name[:-len('_rgb.png')]
        found[name] = tool.measure_misalignment(_read(rgb), _read(SHARED_REAL / f'{name}_nir.png'))['misalignment']
    # a stereo frame with parallax and a shifted night pair; the EPFL scenes and the sign are registered
    assert {n for n, m in found.items() if m > 2.5} == {'pittsstereo_001', 'lowlight_street'}, found
