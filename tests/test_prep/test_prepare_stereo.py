"""``tools/prepare_data.py rgbnir-stereo``: splits, frame lists, keys, keypoints, bad input, and a fake download
through create_lmdb to ``basicsr train``."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from fake_sources import (TEST_V, TRAIN_V, STEREO_SIZE, POINTS, _pair, _stereo_key, _out_key, make_stereo,
                          _keypoint_file, FAKE_FRAMES, PAPER_TEST, make_stereo_frames, assert_split, _run, _error)

from cspsr_arch.engine.options import load_options
from cspsr_arch.prep import commands
from cspsr_arch.prep.sources import STEREO_SPLITS, parse_keypoints, read_sparse_disparity

REPO = Path(__file__).resolve().parents[2]


ENV = {**os.environ, 'CUDA_VISIBLE_DEVICES': ''}


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    """The command lines of the preparation tools (``tools/prepare_data.py`` calls ``commands.prepare_data``)."""
    return commands


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
