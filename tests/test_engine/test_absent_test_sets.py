"""``cspsr_arch.engine.absent_test_sets``: absent test sets of an options file are skipped with a message, present ones kept."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cspsr_arch.engine.absent_test_sets import drop_absent_test_sets
from cspsr_arch.engine.options import check_options, load_options
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.commands import prepare_data

REPO = Path(__file__).resolve().parents[2]
TEST_OPTIONS = REPO / 'options' / 'test_CSPSR_x4.yml'
# `basicsr test` drops the absent sets through the patched parse_options (cspsr_arch/engine/patches.py)
BASICSR = str(Path(sys.executable).parent / 'basicsr')


def _entry(root: Path, name: str) -> dict:
    return {'name': name, 'type': 'PairedCrossSpectralDataset', 'dataroot_gt': str(root / 'HR' / 'VIS'),
            'dataroot_lq': str(root / 'LR_bicubic' / 'X4' / 'VIS'), 'io_backend': {'type': 'disk'}}


def test_absent_sets_are_dropped_partial_ones_kept(tmp_path):
    for folder in ('here/HR/VIS', 'here/LR_bicubic/X4/VIS', 'half/HR/VIS'):
        (tmp_path / folder).mkdir(parents=True)
    opt = {'datasets': {'test_1': _entry(tmp_path / 'here', 'Here'), 'test_2': _entry(tmp_path / 'gone', 'Gone'),
                        'test_3': _entry(tmp_path / 'half', 'Half')}}
    stream = io.StringIO()
    assert drop_absent_test_sets(opt, stream) == ['Gone']
    assert list(opt['datasets']) == ['test_1', 'test_3']  # a half-prepared set stays: the option check names its gap
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith('basicsr test: skipping test set Gone (datasets:test_2): ' + str(tmp_path / 'gone'))
    assert 'tools/prepare_data.py' in lines[0] and lines[1] == 'basicsr test: testing on 2 of 3 test sets: Here, Half.'
    everything_there = {'datasets': {'test_1': _entry(tmp_path / 'here', 'Here')}}
    assert drop_absent_test_sets(everything_there, io.StringIO()) == []
    assert list(everything_there['datasets']) == ['test_1']


def test_no_test_set_present_is_one_clear_error(tmp_path):
    opt = {'datasets': {'test_1': _entry(tmp_path / 'a', 'A'), 'test_2': _entry(tmp_path / 'b', 'B')}}
    with pytest.raises(CSPSRInputError, match=r'No test set .*A \(datasets:test_1: .*B \(datasets:test_2: .*'
                                              r'datasets/README.md'):
        drop_absent_test_sets(opt, io.StringIO())


def _prepare_nirscene(tmp_path: Path) -> None:
    """A fake NIRScene download prepared into ``tmp_path/datasets/NIRScene`` (the path the options use)."""
    rng = np.random.default_rng(0)
    for category in ('country', 'field', 'forest', 'indoor', 'mountain', 'oldbuilding', 'street', 'urban', 'water'):
        folder = tmp_path / 'download' / category
        folder.mkdir(parents=True)
        assert cv2.imwrite(str(folder / '0001_rgb.tiff'), rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
        assert cv2.imwrite(str(folder / '0001_nir.tiff'), rng.integers(0, 256, (32, 40), dtype=np.uint8))
    assert prepare_data(['nirscene', '--root', str(tmp_path / 'download'), '--out',
                         str(tmp_path / 'datasets' / 'NIRScene'), '--scales', '4', '--n-proc', '1']) == 0


def test_shipped_test_options_keep_the_present_set(tmp_path, monkeypatch):
    _prepare_nirscene(tmp_path)
    monkeypatch.chdir(tmp_path)
    opt = load_options(str(TEST_OPTIONS))
    opt.update(is_train=False, dist=False, rank=0, world_size=1, auto_resume=False)
    stream = io.StringIO()
    assert drop_absent_test_sets(opt, stream) == ['RGBNIRStereo_test', 'RANUS_test']
    assert list(opt['datasets']) == ['test_2']
    check_options(opt)  # keys known, data there
    assert 'testing on 1 of 3 test sets: NIRScene_test.' in stream.getvalue()


def test_basicsr_test_runs_on_the_present_sets(tmp_path):
    _prepare_nirscene(tmp_path)
    overrides = ['num_gpu=0', 'network_g:num_feat=8', 'network_g:num_dmf=1', 'network_g:max_disp=4',
                 'path:pretrain_network_g=~', 'val:save_img=false']
    out = subprocess.run([BASICSR, 'test', '-opt', str(TEST_OPTIONS), '--force_yml',
                          *overrides], cwd=tmp_path, env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'skipping test set RGBNIRStereo_test (datasets:test_1): datasets/RGBNIRStereo/test/HR/VIS' in out.stderr
    assert 'skipping test set RANUS_test (datasets:test_3)' in out.stderr
    log = next((tmp_path / 'results' / 'CSPSR_x4_RGBNIRStereo').glob('test_*.log')).read_text()
    assert re.search(r'Validation NIRScene_test\s+# psnr: [0-9.]+', log)
    assert 'Number of test images in NIRScene_test: 9' in log
