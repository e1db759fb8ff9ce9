"""``tools/prepare_data.py`` (:mod:`cspsr_arch.prep.prepare`): the pairs, nirscene and ranus layouts to the
canonical layout, sub-images, real pairs, and errors that name the file."""
from __future__ import annotations

import shutil
from types import ModuleType

import cv2
import numpy as np
import pytest
from conftest import SHARED_REAL
from fake_sources import (POINTS, _image, _save, _pair, make_pairs, _out_key, make_stereo, _read, _bicubic,
                          assert_split, _run, _error)

from cspsr_arch.prep import commands
from cspsr_arch.prep.sources import STEREO_SPLITS, read_sparse_disparity


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    """The command lines of the preparation tools (``tools/prepare_data.py`` calls ``commands.prepare_data``)."""
    return commands


def test_pairs_layout_crop_tiff_and_three_channel_nir(tool, tmp_path, capsys):
    sources = make_pairs(tmp_path / 'src')
    assert _run(tool, 'pairs', '--root', str(tmp_path / 'src'), '--out', str(tmp_path / 'out'), '--scales', '2',
                '4') == 0
    assert_split(tmp_path / 'out' / 'test', sources)
    assert not (tmp_path / 'out' / 'test' / 'DISP_SPARSE').exists()  # no sparse ground truth in this layout
    out = capsys.readouterr().out
    assert '3 pairs (0 already done), 3 images per stream' in out and '50x37 -> 48x36: 1 pair(s)' in out


def test_sub_images_keep_the_four_streams_and_keypoints_aligned(tool, tmp_path):
    sources = make_stereo(tmp_path / 'src')
    assert _run(tool, 'rgbnir-stereo', '--root', str(tmp_path / 'src'), '--out', str(tmp_path / 'out'), '--split',
                'test', '--crop-size', '32', '--step', '16') == 0
    split = tmp_path / 'out' / 'test'
    key = _out_key(STEREO_SPLITS['test'][0], 1)
    vis, nir = (img[:52, :68] for img in sources[key])
    boxes = [(y, x) for y in (0, 16, 20) for x in (0, 16, 32, 36)]  # 52 x 68 in 32 x 32 tiles every 16 px
    assert sorted(p.stem for p in (split / 'HR' / 'VIS').glob(f'{key}_s*.png')) == [
        f'{key}_s{i:03d}' for i in range(1, 13)]
    lr = {s: (_bicubic(vis, s), _bicubic(nir, s)) for s in (2, 4)}
    for index, (y, x) in enumerate(boxes, 1):
        tile = f'{key}_s{index:03d}'
        np.testing.assert_array_equal(_read(split / 'HR' / 'VIS' / f'{tile}.png'), vis[y:y + 32, x:x + 32])
        np.testing.assert_array_equal(_read(split / 'HR' / 'NIR' / f'{tile}.png'), nir[y:y + 32, x:x + 32])
        for s, (lr_vis, lr_nir) in lr.items():
            window = np.s_[y // s:(y + 32) // s, x // s:(x + 32) // s]
            np.testing.assert_array_equal(_read(split / f'LR_bicubic/X{s}/VIS/{tile}.png'), lr_vis[window])
            np.testing.assert_array_equal(_read(split / f'LR_bicubic/X{s}/NIR/{tile}.png'), lr_nir[window])
        points = read_sparse_disparity(split / 'DISP_SPARSE' / f'{tile}.txt')
        inside = [p for p in POINTS[:4] if y <= p[1] < y + 32 and x <= p[0] < x + 32]
        np.testing.assert_allclose(points, np.array(inside).reshape(-1, 4) - [x, y, 0, 0], atol=1e-4)
    assert f'{key}_s001.png (32,32,3)' in (split / 'meta_info.txt').read_text().splitlines()


def test_nirscene_and_ranus_layouts(tool, tmp_path, capsys):
    rng = np.random.default_rng(3)
    scene = {f'{c}_0001': _pair(rng, tmp_path / 'nirscene' / c / '0001_rgb.tiff', tmp_path / 'nirscene' / c /
                                '0001_nir.tiff', (28, 36), nir_channels=3)
             for c in ('country', 'field', 'forest', 'indoor', 'mountain', 'oldbuilding', 'street', 'urban', 'water')}
    assert _run(tool, 'nirscene', '--root', str(tmp_path / 'nirscene'), '--out', str(tmp_path / 'NIRScene')) == 0
    assert_split(tmp_path / 'NIRScene' / 'test', scene)
    shutil.rmtree(tmp_path / 'nirscene' / 'water')
    assert _run(tool, 'nirscene', '--root', str(tmp_path / 'nirscene'), '--out', str(tmp_path / 'other')) == 2
    assert f'{tmp_path / "nirscene" / "water"} is missing' in capsys.readouterr().err
    assert _run(tool, 'nirscene', '--root', str(tmp_path / 'nirscene'), '--out', str(tmp_path / 'other'), '--subset',
                'field', 'urban') == 0
    chosen = sorted(p.stem for p in (tmp_path / 'other' / 'test' / 'HR' / 'VIS').iterdir())
    assert chosen == ['field_0001', 'urban_0001']

    ranus = {}
    for seq in ('seq_a', 'seq_b'):
        for frame in ('000010', '000020'):
            ranus[f'{seq}_{frame}'] = _pair(rng, tmp_path / 'ranus' / 'RGB' / seq / f'{frame}.png', tmp_path / 'ranus' /
                                            'NIR' / seq / f'{frame}.png', (24, 28), nir_channels=3)
    assert _run(tool, 'ranus', '--root', str(tmp_path / 'ranus'), '--out', str(tmp_path / 'RANUS'), '--scales',
                '2') == 0
    assert_split(tmp_path / 'RANUS' / 'test', ranus, scales=(2, ))


def test_errors_name_the_file(tool, tmp_path, capsys):
    rng = np.random.default_rng(4)
    src = tmp_path / 'src'
    _save(src / 'lonely_rgb.png', _image(rng, 16, 16, 3))
    _error(tool, capsys, src, 'missing NIR image for the VIS file', str(src / 'lonely_rgb.png'))
    (src / 'lonely_rgb.png').unlink()
    _save(src / 'x_rgb.png', _image(rng, 16, 20, 3))
    _save(src / 'x_nir.png', _image(rng, 16, 16, 1))
    _error(tool, capsys, src, 'size mismatch', str(src / 'x_rgb.png'), str(src / 'x_nir.png'), '20x16', '16x16')
    _save(src / 'x_nir.png', _image(rng, 16, 20, 3))
    _error(tool, capsys, src, str(src / 'x_nir.png'), '3 channels that differ')
    _error(tool, capsys, src, "invalid choice: 'kaist'", layout='kaist')
    _save(src / 'x_nir.png', _image(rng, 16, 20, 1))
    assert _run(tool, 'pairs', '--root', str(src), '--out', str(tmp_path / 'out')) == 0
    _error(tool, capsys, src, 'prepared with other settings', extra=('--scales', '3'))
    _error(tool, capsys, src, 'multiples of 4', extra=('--crop-size', '30'))


@pytest.mark.skipif(not SHARED_REAL.is_dir(), reason=f'real RGB-NIR pairs not found at {SHARED_REAL} '
                    '(only in the project checkout)')
def test_real_pairs_folder(tool, tmp_path):
    assert tool.prepare_data(['pairs', '--root', str(SHARED_REAL), '--out', str(tmp_path / 'Real'), '--n-proc', '2']) == 0
    split = tmp_path / 'Real' / 'test'
    names = sorted(p.name[:-len('_rgb.png')] for p in SHARED_REAL.glob('*_rgb.png'))
    assert len(names) == 6
    meta = (split / 'meta_info.txt').read_text().splitlines()
    assert [line.split('.png')[0] for line in meta] == names
    for name, line in zip(names, meta):
        vis = cv2.imread(str(SHARED_REAL / f'{name}_rgb.png'), cv2.IMREAD_COLOR)
        height, width = vis.shape[0] // 4 * 4, vis.shape[1] // 4 * 4
        assert line == f'{name}.png ({height},{width},3)'
        np.testing.assert_array_equal(_read(split / 'HR' / 'VIS' / f'{name}.png'), vis[:height, :width])
        assert _read(split / 'HR' / 'NIR' / f'{name}.png').shape == (height, width)
        assert _read(split / 'LR_bicubic' / 'X4' / 'NIR' / f'{name}.png').shape == (height // 4, width // 4)
    hr = _read(split / 'HR' / 'VIS' / 'pittsstereo_001.png')
    np.testing.assert_array_equal(_read(split / 'LR_bicubic' / 'X4' / 'VIS' / 'pittsstereo_001.png'), _bicubic(hr, 4))
