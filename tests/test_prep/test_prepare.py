"""Tests of ``tools/prepare_data.py``: the four source layouts to the canonical layout, LMDB, re-runs, errors."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import cv2
import lmdb
import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize
from conftest import SHARED_REAL

from cspsr_arch.prep import commands, split as split_layout
from cspsr_arch.prep.sources import STEREO_SPLITS, parse_keypoints, read_sparse_disparity
from cspsr_arch.options import load_options

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, 'CUDA_VISIBLE_DEVICES': ''}
STEREO_SIZE = (53, 70)  # H, W: cropped to 52 x 68 for scales 2 and 4
# Keypoints of the fake stereo test frames: 0-based column, row, disparity (pixels), class. The last two lie
# in the cropped-off column 68..69 and row 52.
POINTS = np.array([[10, 5, 3.5, 1], [67, 51, 12.25, 2], [0, 0, 0.5, 3], [40, 20, 7.0, 0], [69, 10, 2.0, 1],
                   [30, 52, 1.0, 2]], np.float64)


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    """Import the tool from its path (``tools/`` is not a package)."""
    return commands


def _image(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
    """Smooth random uint8 image (H, W, C) or (H, W) when ``channels`` is 1."""
    small = rng.random((height // 4 + 2, width // 4 + 2, channels)).astype(np.float32)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)
    img = np.clip(np.round(img * 200 + 20 + rng.integers(0, 30, img.shape)), 0, 255).astype(np.uint8)
    return img[:, :, 0] if channels == 1 else img


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img), path


def _pair(rng: np.random.Generator, vis_path: Path, nir_path: Path, size: tuple, nir_channels: int = 1) -> tuple:
    """Write a VIS/NIR pair; returns (VIS BGR uint8, NIR uint8 single channel)."""
    vis, nir = _image(rng, *size, 3), _image(rng, *size, 1)
    _save(vis_path, vis)
    _save(nir_path, np.repeat(nir[:, :, None], 3, axis=2) if nir_channels == 3 else nir)
    return vis, nir


def make_pairs(root: Path) -> dict:
    """A ``pairs`` folder: a (PNG), b (TIFF, 3-channel NIR, size not divisible by 4), c (BMP)."""
    rng = np.random.default_rng(1)
    sources = {'a': _pair(rng, root / 'a_rgb.png', root / 'a_nir.png', (40, 48)),
               'b': _pair(rng, root / 'b_rgb.tiff', root / 'b_nir.tiff', (37, 50), nir_channels=3),
               'c': _pair(rng, root / 'c_RGB.bmp', root / 'c_nir.bmp', (24, 32))}
    (root / 'README.md').write_text('not an image')
    return sources


def _stereo_key(video: str, frame: int) -> str:
    return f'{video[6:8]}{video[9:]}_{frame:06d}'


def _out_key(video: str, frame: int) -> str:
    """Output key of a frame of :func:`make_stereo`: the video name, then the frame's file name key."""
    return f'{video}_{_stereo_key(video, frame)}'


def make_stereo(root: Path) -> dict:
    """A fake RGB-NIR stereo tree: 12 videos of one frame; test videos have keypoints, lists and an unlisted frame.

    Returns:
        Output key (:func:`_out_key`) -> (VIS, NIR) of each listed frame.
    """
    rng = np.random.default_rng(2)
    sources = {}
    height, width = STEREO_SIZE
    for split, videos in STEREO_SPLITS.items():
        for video in videos:
            key = _stereo_key(video, 1)
            folder = root / video
            sources[_out_key(video, 1)] = _pair(rng, folder / 'RGBResize' / f'{key}_RGBResize.png',
                                                folder / 'NIRResize' / f'{key}_NIRResize.png', STEREO_SIZE,
                                                nir_channels=3)
            if split == 'test':
                extra = _stereo_key(video, 2)  # present but not listed: not part of the data set
                _pair(rng, folder / 'RGBResize' / f'{extra}_RGBResize.png', folder / 'NIRResize' /
                      f'{extra}_NIRResize.png', STEREO_SIZE)
                (root / 'lists').mkdir(exist_ok=True)
                (root / 'lists' / f'{video}.txt').write_text(f'{video} {key} 0.01 0.02 1 1\n')
                _keypoint_file(folder / 'Keypoint' / f'{key}_Keypoint.txt', POINTS, height, width)
    return sources


def _keypoint_file(path: Path, points: np.ndarray, height: int, width: int) -> None:
    """Write ``points`` (0-based column, row, disparity in pixels, class) as a data set ``Keypoint.txt``."""
    lines = [f'{float((x + 1) / width)!r} {float((y + 1) / height)!r} {float(d / width)!r} {int(c)}'
             for x, y, d, c in points]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(lines) + '\n')


TRAIN_V, TEST_V = STEREO_SPLITS['train'], STEREO_SPLITS['test']
# Frames of the fake tree for --frames, per test video, in list order. TEST_V[0] has a list file (plus an
# unlisted frame 000020), TEST_V[1] none (its sorted file names are the list), TEST_V[2] a list file that is not
# in name order; TEST_V[3] has one frame. Every training video has one frame 000001, so frame names repeat.
FAKE_FRAMES = {TEST_V[0]: ['000003', '000005', '000007', '000008', '000010', '000012', '000015'],
               TEST_V[1]: ['000005', '000006', '000009', '000010', '000011', '000014'],
               TEST_V[2]: ['000004', '000002', '000009', '000001', '000006', '000003'],
               TEST_V[3]: ['000001']}
# --frames paper: the frames at positions 0 and 5 of each list (not the frame numbers divisible by 5).
PAPER_TEST = {f'{TEST_V[0]}_000003', f'{TEST_V[0]}_000012', f'{TEST_V[1]}_000005', f'{TEST_V[1]}_000014',
              f'{TEST_V[2]}_000004', f'{TEST_V[2]}_000003', f'{TEST_V[3]}_000001'}


def make_stereo_frames(root: Path) -> dict:
    """The fake tree of :data:`FAKE_FRAMES` with 8 x 12 frames; returns output key -> (VIS, NIR)."""
    rng = np.random.default_rng(5)
    sources = {}
    frames = {**{video: ['000001'] for video in TRAIN_V}, **FAKE_FRAMES}
    for video, names in frames.items():
        files = names + (['000020'] if video == TEST_V[0] else [])
        for name in files:
            pair = _pair(rng, root / video / 'RGBResize' / f'{name}_RGBResize.png',
                         root / video / 'NIRResize' / f'{name}_NIRResize.png', (8, 12))
            if name in names:
                sources[f'{video}_{name}'] = pair
    (root / 'lists').mkdir()
    for video in (TEST_V[0], TEST_V[2]):
        (root / 'lists' / f'{video}.txt').write_text(''.join(f'{video} {n} 0.01 0.02 1 1\n' for n in frames[video]))
    return sources


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def _bicubic(img: np.ndarray, scale: int) -> np.ndarray:
    return np.clip(np.round(imresize(img.astype(np.float32) / 255.0, 1.0 / scale) * 255), 0, 255).astype(np.uint8)


def assert_split(split: Path, sources: dict, scales=(2, 4)) -> None:
    """Check tree, HR = source cropped to a multiple of lcm(scales), LR = imresize(HR), meta_info."""
    lcm = int(np.lcm.reduce(scales))
    assert {'HR', 'LR_bicubic', 'meta_info.txt'} <= {p.name for p in split.iterdir()}
    assert sorted(p.name for p in (split / 'LR_bicubic').iterdir()) == sorted(f'X{s}' for s in scales)
    meta = []
    for key, (vis, nir) in sorted(sources.items()):
        height, width = vis.shape[0] // lcm * lcm, vis.shape[1] // lcm * lcm
        hr_vis, hr_nir = _read(split / 'HR' / 'VIS' / f'{key}.png'), _read(split / 'HR' / 'NIR' / f'{key}.png')
        np.testing.assert_array_equal(hr_vis, vis[:height, :width])
        np.testing.assert_array_equal(hr_nir, nir[:height, :width])
        for s in scales:
            lr_vis, lr_nir = (_read(split / 'LR_bicubic' / f'X{s}' / n / f'{key}.png') for n in ('VIS', 'NIR'))
            assert lr_vis.shape == (height // s, width // s, 3) and lr_nir.shape == (height // s, width // s)
            np.testing.assert_array_equal(lr_vis, _bicubic(hr_vis, s))
            np.testing.assert_array_equal(lr_nir, _bicubic(hr_nir, s))
        meta.append(f'{key}.png ({height},{width},3)')
    for folder in ['HR/VIS', 'HR/NIR'] + [f'LR_bicubic/X{s}/{n}' for s in scales for n in ('VIS', 'NIR')]:
        assert sorted(p.stem for p in (split / folder).iterdir()) == sorted(sources)
    assert (split / 'meta_info.txt').read_text() == '\n'.join(meta) + '\n'


def _run(tool: ModuleType, *args: str) -> int:
    return tool.prepare_data([*args, '--n-proc', '1'])


def test_pairs_layout_crop_tiff_and_three_channel_nir(tool, tmp_path, capsys):
    sources = make_pairs(tmp_path / 'src')
    assert _run(tool, 'pairs', '--root', str(tmp_path / 'src'), '--out', str(tmp_path / 'out'), '--scales', '2',
                '4') == 0
    assert_split(tmp_path / 'out' / 'test', sources)
    assert not (tmp_path / 'out' / 'test' / 'DISP_SPARSE').exists()  # no sparse ground truth in this layout
    out = capsys.readouterr().out
    assert '3 pairs (0 already done), 3 images per stream' in out and '50x37 -> 48x36: 1 pair(s)' in out


def test_rerun_skips_finished_pairs_and_redoes_missing_or_changed(tool, tmp_path, capsys):
    sources = make_pairs(tmp_path / 'src')
    args = ('pairs', '--root', str(tmp_path / 'src'), '--out', str(tmp_path / 'out'), '--split', 'val')
    assert _run(tool, *args) == 0
    split = tmp_path / 'out' / 'val'
    stamps = {p: p.stat().st_mtime_ns for p in split.rglob('*.png')}
    capsys.readouterr()
    assert _run(tool, *args) == 0
    assert '3 pairs (3 already done)' in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in split.rglob('*.png')} == stamps
    lost = split / 'LR_bicubic' / 'X4' / 'NIR' / 'b.png'
    lost.unlink()
    vis = sources['a'][0]
    vis[:4] = 255 - vis[:4]  # the source changes: its outputs are redone
    _save(tmp_path / 'src' / 'a_rgb.png', vis)
    assert _run(tool, *args) == 0
    assert '3 pairs (1 already done)' in capsys.readouterr().out
    assert_split(split, sources)
    assert (split / 'HR' / 'VIS' / 'c.png').stat().st_mtime_ns == stamps[split / 'HR' / 'VIS' / 'c.png']


def test_interrupted_run_leaves_nothing_a_later_run_trusts(tool, tmp_path, monkeypatch):
    sources = make_pairs(tmp_path / 'src')
    args = ('pairs', '--root', str(tmp_path / 'src'), '--out', str(tmp_path / 'out'), '--scales', '2', '4')
    calls = {'n': 0}
    real_replace = os.replace

    def interrupted_replace(src, dst):
        calls['n'] += 1
        if calls['n'] == 9:  # the second pair, between writing a temporary file and moving it into place
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(split_layout.os, 'replace', interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        _run(tool, *args)
    monkeypatch.setattr(split_layout.os, 'replace', real_replace)
    split = tmp_path / 'out' / 'test'
    assert not [p for p in split.rglob('*') if '.tmp-' in p.name]
    assert [p.name for p in (split / '.prepare' / 'items').iterdir()] == ['a.json']  # b is not trusted
    assert not (split / 'meta_info.txt').exists()
    (split / 'HR' / 'VIS' / '.b.png.tmp-99999').write_bytes(b'\x89PNG half')  # left by a killed process
    assert _run(tool, *args) == 0
    assert not [p for p in split.rglob('*') if '.tmp-' in p.name]
    assert_split(split, sources)


def test_rgbnir_stereo_splits_lists_and_keypoints(tool, tmp_path, capsys):
    sources = make_stereo(tmp_path / 'src')
    assert _run(tool, 'rgbnir-stereo', '--root', str(tmp_path / 'src'), '--out', str(tmp_path / 'out')) == 0
    for split, videos in STEREO_SPLITS.items():
        assert_split(tmp_path / 'out' / split, {_out_key(v, 1): sources[_out_key(v, 1)] for v in videos})
    assert not (tmp_path / 'out' / 'train' / 'DISP_SPARSE').exists()
    sparse = tmp_path / 'out' / 'test' / 'DISP_SPARSE'
    assert sorted(p.stem for p in sparse.iterdir()) == sorted(_out_key(v, 1) for v in STEREO_SPLITS['test'])
    kept = POINTS[:4]
    for path in sparse.iterdir():
        np.testing.assert_allclose(read_sparse_disparity(path), kept, atol=1e-4)
        lr = read_sparse_disparity(path, scale=4)
        np.testing.assert_allclose(lr[:, :2], (kept[:, :2] + 0.5) / 4 - 0.5, atol=1e-4)
        np.testing.assert_allclose(lr[:, 2], kept[:, 2] / 4, atol=1e-4)
    assert '16 of 24 keypoints kept' in capsys.readouterr().out
    video = STEREO_SPLITS['test'][0]
    raw = tmp_path / 'src' / video / 'Keypoint' / f'{_stereo_key(video, 1)}_Keypoint.txt'
    np.testing.assert_allclose(parse_keypoints(raw, STEREO_SIZE[1], STEREO_SIZE[0]), POINTS, atol=1e-9)


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


def test_stereo_frame_lists_clean_and_paper(tool, tmp_path, capsys):
    sources = make_stereo_frames(tmp_path / 'src')
    train_frames = {f'{video}_000001' for video in TRAIN_V}
    test_frames = {f'{video}_{name}' for video, names in FAKE_FRAMES.items() for name in names}
    expected = {'clean': {'train': train_frames, 'test': test_frames},
                'paper': {'train': train_frames | (test_frames - PAPER_TEST), 'test': PAPER_TEST}}
    assert len(expected['paper']['train']) == 8 + 13
    for frames, splits in expected.items():
        extra = () if frames == 'clean' else ('--frames', 'paper')  # clean is the default
        assert _run(tool, 'rgbnir-stereo', '--root', str(tmp_path / 'src'), '--out', str(tmp_path / frames),
                    '--scales', '2', *extra) == 0
        for split, keys in splits.items():
            assert_split(tmp_path / frames / split, {key: sources[key] for key in keys}, scales=(2, ))
            settings = (tmp_path / frames / split / '.prepare' / 'settings.json').read_text()
            assert f'"frames": "{frames}"' in settings
    capsys.readouterr()
    assert _run(tool, 'rgbnir-stereo', '--root', str(tmp_path / 'src'), '--out', str(tmp_path / 'clean'), '--scales',
                '2', '--frames', 'paper') == 2  # a split prepared with the other frame lists is refused
    err = capsys.readouterr().err
    assert 'prepared with other settings' in err and "'frames': 'clean'" in err and "'frames': 'paper'" in err
    _error(tool, capsys, tmp_path / 'src', '--frames chooses the frame lists of rgbnir-stereo', extra=('--frames',
                                                                                                       'paper'))


def test_stereo_keys_start_with_the_video_and_keypoints_follow_their_frame(tool, tmp_path, capsys):
    rng = np.random.default_rng(6)
    points = {TEST_V[0]: np.array([[3, 2, 1.5, 1], [10, 7, 4.0, 2]]), TEST_V[1]: np.array([[5, 9, 2.25, 0]])}
    sources = {}
    for video, video_points in points.items():  # the same frame name in two videos
        folder = tmp_path / 'src' / video
        sources[f'{video}_000001'] = _pair(rng, folder / 'RGBResize' / '000001_RGBResize.png',
                                           folder / 'NIRResize' / '000001_NIRResize.png', (16, 20))
        _keypoint_file(folder / 'Keypoint' / '000001_Keypoint.txt', video_points, 16, 20)
    args = ('rgbnir-stereo', '--root', str(tmp_path / 'src'), '--out', str(tmp_path / 'out'), '--split', 'test',
            '--subset', *points)
    assert _run(tool, *args) == 0
    split = tmp_path / 'out' / 'test'
    assert_split(split, sources)
    for video, video_points in points.items():
        np.testing.assert_allclose(read_sparse_disparity(split / 'DISP_SPARSE' / f'{video}_000001.txt'), video_points,
                                   atol=1e-4)
    (tmp_path / 'src' / 'lists').mkdir()
    listed_twice = tmp_path / 'src' / 'lists' / f'{TEST_V[1]}.txt'
    listed_twice.write_text(f'{TEST_V[1]} 000001 1 1\n{TEST_V[1]} 000001 1 1\n')
    _error(tool, capsys, tmp_path / 'src', str(listed_twice), "frame '000001' twice", layout='rgbnir-stereo',
           extra=args[5:])


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


def test_lmdb_keys_match_meta_info_and_rerun_keeps_it(tool, tmp_path, capsys):
    sources = make_pairs(tmp_path / 'src')
    args = ('pairs', '--root', str(tmp_path / 'src'), '--out', str(tmp_path / 'out'), '--lmdb')
    assert _run(tool, *args) == 0
    root = tmp_path / 'out' / 'test_lmdb'
    assert (root / 'meta_info.txt').read_text() == (tmp_path / 'out' / 'test' / 'meta_info.txt').read_text()
    for rel in ('HR/VIS', 'HR/NIR', 'LR_bicubic/X2/VIS', 'LR_bicubic/X2/NIR', 'LR_bicubic/X4/VIS', 'LR_bicubic/X4/NIR'):
        with lmdb.open(str(root / f'{rel}.lmdb'), readonly=True, lock=False) as env, env.begin() as txn:
            keys = [k.decode() for k, _ in txn.cursor()]
            assert keys == sorted(sources)
            stored = cv2.imdecode(np.frombuffer(txn.get(b'b'), np.uint8), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(stored, _read(tmp_path / 'out' / 'test' / rel / 'b.png'))
    assert f'wrote {root}' in capsys.readouterr().out
    assert _run(tool, *args) == 0
    assert f'{root} is up to date' in capsys.readouterr().out


def _error(tool, capsys, root: Path, *fragments: str, layout: str = 'pairs', extra=()) -> None:
    assert _run(tool, layout, '--root', str(root), '--out', str(root.parent / 'out'), *extra) == 2
    err = capsys.readouterr().err
    assert 'prepare_data.py: error:' in err or 'invalid choice' in err
    for fragment in fragments:
        assert fragment in err, err


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


def test_bad_stereo_input_is_an_error(tool, tmp_path, capsys):
    make_stereo(tmp_path / 'src')
    video = STEREO_SPLITS['test'][1]
    key = _stereo_key(video, 1)
    (tmp_path / 'src' / video / 'Keypoint' / f'{key}_Keypoint.txt').write_text('0.1 0.2 0.01\n')
    _error(tool, capsys, tmp_path / 'src', f'{key}_Keypoint.txt, line 1', 'x y d c', layout='rgbnir-stereo',
           extra=('--split', 'test'))
    (tmp_path / 'src' / video / 'NIRResize' / f'{key}_NIRResize.png').unlink()
    _error(tool, capsys, tmp_path / 'src', f'{key}_NIRResize.png', 'missing NIR', layout='rgbnir-stereo')
    shutil.rmtree(tmp_path / 'src' / STEREO_SPLITS['train'][0])
    _error(tool, capsys, tmp_path / 'src', f'{STEREO_SPLITS["train"][0]} is missing', '--subset',
           layout='rgbnir-stereo', extra=('--split', 'train'))


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


def test_stereo_tree_to_lmdb_to_basicsr_train(tool, tmp_path):
    """Done means: fake RGB-NIR stereo download -> prepare_data -> create_lmdb -> basicsr train (x4 options)."""
    make_stereo(tmp_path / 'download')
    assert tool.prepare_data(['rgbnir-stereo', '--root', str(tmp_path / 'download'), '--out',
                      str(tmp_path / 'datasets' / 'RGBNIRStereo'), '--scales', '2', '4', '--n-proc', '2']) == 0
    assert commands.create_lmdb(['--input', str(tmp_path / 'datasets' / 'RGBNIRStereo' / 'train')]) == 0
    overrides = ['num_gpu=0', 'network_g:num_feat=8', 'network_g:num_dmf=1', 'network_g:max_disp=4',
                 'datasets:train:gt_size=32', 'datasets:train:batch_size_per_gpu=2',
                 'datasets:train:num_worker_per_gpu=0',
                 'datasets:train:dataset_enlarge_ratio=1', 'train:total_iter=2', 'logger:print_freq=1',
                 'logger:save_checkpoint_freq=2', 'logger:use_tb_logger=false', 'val:val_freq=2',
                 'path:pretrain_network_disp=~']  # no pre-trained disparity network here
    out = subprocess.run([str(Path(sys.executable).parent / 'basicsr'), 'train', '-opt',
                          str(REPO / 'options' / 'train_CSPSR_x4.yml'), '--force_yml', *overrides], cwd=tmp_path,
                         env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'CSPSR_x4_RGBNIRStereo'
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    log = next(exp.glob('train_*.log')).read_text()
    assert re.search(r'l_pix: [0-9.e+-]+', log) and re.search(r'Validation RGBNIRStereo_test\s+# psnr: [0-9.]+', log)
    x2 = load_options(str(REPO / 'options' / 'train_CSPSR_x2.yml'))
    roots = [v for dataset in x2['datasets'].values() for k, v in dataset.items() if k.startswith('dataroot')]
    assert len(roots) == 8
    for root in roots:  # the x2 options read what the tools wrote
        assert (tmp_path / root).exists(), root
