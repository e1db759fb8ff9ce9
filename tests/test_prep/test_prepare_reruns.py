"""``tools/prepare_data.py``: re-runs skip finished pairs, an interrupted run leaves nothing a later run trusts,
``--lmdb`` and its re-run."""
from __future__ import annotations

import os
from types import ModuleType

import cv2
import lmdb
import numpy as np
import pytest
from fake_sources import _save, make_pairs, _read, assert_split, _run

from cspsr_arch.prep import commands, split as split_layout


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    """The command lines of the preparation tools (``tools/prepare_data.py`` calls ``commands.prepare_data``)."""
    return commands


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
