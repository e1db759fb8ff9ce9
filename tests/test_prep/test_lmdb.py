"""Tests of ``tools/create_lmdb.py`` (:mod:`cspsr_arch.prep.lmdb`): conversion of a split folder to LMDBs, round trip, and input errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from cspsr_arch.prep import commands, lmdb

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'create_lmdb.py'
KEYS = ('0001', '0002', 'scene_3')
HR_SIZE = (24, 24)
# Stream folders of the fake split: X2 has disparity, X4 has not.
STREAMS = ('HR/VIS', 'HR/NIR', 'HR/DISP_L', 'HR/DISP_R', 'LR_bicubic/X2/VIS', 'LR_bicubic/X2/NIR',
           'LR_bicubic/X2/DISP_L', 'LR_bicubic/X2/DISP_R', 'LR_bicubic/X4/VIS', 'LR_bicubic/X4/NIR')


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    """The library behind the tool."""
    return lmdb


def _image(rng: np.random.Generator, stream: str, height: int, width: int) -> np.ndarray:
    """Random image in the format of one stream (VIS: 3-channel uint8, NIR: uint8, DISP: uint16).

    Args:
        rng: Random generator.
        stream: Stream name (``VIS``, ``NIR``, ``DISP_L``, ``DISP_R``).
        height: Image height.
        width: Image width.
    """
    if stream == 'VIS':
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if stream == 'NIR':
        return rng.integers(0, 256, (height, width), dtype=np.uint8)
    return rng.integers(0, 65536, (height, width), dtype=np.uint16)  # full 16-bit range


def make_split(root: Path, streams: tuple[str, ...] = STREAMS, keys: tuple[str, ...] = KEYS) -> Path:
    """Write a tiny split in the layout of ``datasets/README.md`` under ``root/data/train``.

    Args:
        root: Folder to build under (pytest's ``tmp_path``).
        streams: Stream folders to create.
        keys: Image keys.

    Returns:
        The split folder.
    """
    rng = np.random.default_rng(0)
    split = root / 'data' / 'train'
    for rel in streams:
        scale = 1 if rel.startswith('HR/') else int(rel.split('/')[1][1:])
        folder = split / rel
        folder.mkdir(parents=True)
        for key in keys:
            image = _image(rng, rel.rsplit('/', 1)[1], HR_SIZE[0] // scale, HR_SIZE[1] // scale)
            assert cv2.imwrite(str(folder / f'{key}.png'), image)
    (split / 'meta_info.txt').write_text(''.join(f'{key}.png ({HR_SIZE[0]},{HR_SIZE[1]},3)\n' for key in keys))
    return split


def _files_under(folder: Path) -> dict[str, bytes]:
    """Return relative path -> content of every file under ``folder``.

    Args:
        folder: Folder to snapshot.
    """
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def _assert_round_trip(split: Path, written: dict[str, str], compress_level: int) -> None:
    """Check every LMDB: meta_info lines and every image equal to its source file (pixels and dtype).

    Args:
        split: The source split folder.
        written: Output of ``create_lmdbs``.
        compress_level: Compression level the LMDBs were written with.
    """
    from basicsr.utils import FileClient

    assert sorted(written) == sorted(STREAMS)
    client = FileClient('lmdb', db_paths=list(written.values()), client_keys=list(written))
    for rel, lmdb_path in written.items():
        lines = (Path(lmdb_path) / 'meta_info.txt').read_text().splitlines()
        channels = 3 if rel.endswith('/VIS') else 1
        scale = 1 if rel.startswith('HR/') else int(rel.split('/')[1][1:])
        size = f'{HR_SIZE[0] // scale},{HR_SIZE[1] // scale}'
        assert lines == [f'{key}.png ({size},{channels}) {compress_level}' for key in KEYS]
        for key in KEYS:
            source = cv2.imread(str(split / rel / f'{key}.png'), cv2.IMREAD_UNCHANGED)
            stored = cv2.imdecode(np.frombuffer(client.get(key, rel), np.uint8), cv2.IMREAD_UNCHANGED)
            assert stored.dtype == source.dtype
            assert stored.shape == source.shape
            np.testing.assert_array_equal(stored, source)
            if 'DISP' in rel:
                assert stored.dtype == np.uint16 and stored.max() > 255  # 16 bits survived


def test_discover_streams(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path)
    streams = tool.discover_streams(split)
    assert list(streams) == list(STREAMS)
    assert all(keys == sorted(KEYS) for keys in streams.values())


def test_convert_tree_meta_info_and_round_trip(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path)
    written = tool.create_lmdbs(split, compress_level=0, progress=False)
    output = tmp_path / 'data' / 'train_lmdb'  # default output
    assert written == {rel: str(output / f'{rel}.lmdb') for rel in STREAMS}
    for rel in STREAMS:
        assert (output / f'{rel}.lmdb' / 'data.mdb').is_file()
    assert (output / 'meta_info.txt').read_bytes() == (split / 'meta_info.txt').read_bytes()
    assert sorted(p.name for p in output.iterdir()) == ['HR', 'LR_bicubic', 'meta_info.txt']
    assert sorted(p.name for p in (output / 'LR_bicubic').iterdir()) == ['X2', 'X4']
    assert sorted(p.name for p in (tmp_path / 'data').iterdir()) == ['train', 'train_lmdb']  # no staging left
    _assert_round_trip(split, written, compress_level=0)


def test_convert_without_disparity_and_with_threads(tool: ModuleType, tmp_path: Path) -> None:
    streams = ('HR/VIS', 'HR/NIR', 'LR_bicubic/X4/VIS', 'LR_bicubic/X4/NIR')
    split = make_split(tmp_path, streams=streams)
    written = tool.create_lmdbs(split, tmp_path / 'out' / 'lmdb', n_thread=2, progress=False)
    assert sorted(written) == sorted(streams)
    from basicsr.utils import FileClient
    client = FileClient('lmdb', db_paths=list(written.values()), client_keys=list(written))
    for rel in streams:
        for key in KEYS:
            stored = cv2.imdecode(np.frombuffer(client.get(key, rel), np.uint8), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(stored, cv2.imread(str(split / rel / f'{key}.png'), cv2.IMREAD_UNCHANGED))


def _expect_error(tool: ModuleType, split: Path, *fragments: str) -> str:
    """Run ``create_lmdbs`` expecting a ``ValueError`` whose message holds every fragment; check no output.

    Args:
        tool: The tool module.
        split: Split folder to convert.
        fragments: Substrings the message must contain.

    Returns:
        The message.
    """
    before = sorted(p.name for p in split.parent.iterdir()) if split.parent.is_dir() else []
    with pytest.raises(ValueError) as info:
        tool.create_lmdbs(split, progress=False)
    assert isinstance(info.value, tool.LmdbInputError)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    after = sorted(p.name for p in split.parent.iterdir()) if split.parent.is_dir() else []
    assert after == before  # nothing written
    return message


def test_error_existing_output_overwrites_nothing(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path)
    output = tmp_path / 'data' / 'train_lmdb'
    tool.create_lmdbs(split, progress=False)
    snapshot = _files_under(output)
    _expect_error(tool, split, str(output), 'already exists', '--output')
    assert _files_under(output) == snapshot
    # An empty existing folder counts too.
    other = tmp_path / 'empty'
    other.mkdir()
    with pytest.raises(tool.LmdbInputError, match='already exists'):
        tool.create_lmdbs(split, other, progress=False)
    assert list(other.iterdir()) == []


def test_error_missing_stream_file(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path)
    missing = split / 'LR_bicubic' / 'X4' / 'NIR' / '0002.png'
    missing.unlink()
    _expect_error(tool, split, str(missing), 'missing')


def test_error_extra_stream_file(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path)
    extra = split / 'HR' / 'DISP_L' / 'stray.png'
    cv2.imwrite(str(extra), np.zeros(HR_SIZE, np.uint16))
    _expect_error(tool, split, str(extra), 'extra')


def test_error_missing_input(tool: ModuleType, tmp_path: Path) -> None:
    _expect_error(tool, tmp_path / 'data' / 'nope', str(tmp_path / 'data' / 'nope'), 'does not exist')


def test_error_missing_required_stream(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path, streams=('HR/VIS', 'LR_bicubic/X2/VIS', 'LR_bicubic/X2/NIR'))
    _expect_error(tool, split, str(split / 'HR' / 'NIR'), 'missing')
    split_without_lr = make_split(tmp_path / 'b', streams=('HR/VIS', 'HR/NIR'))
    _expect_error(tool, split_without_lr, str(split_without_lr / 'LR_bicubic'))


@pytest.mark.parametrize('content', [b'', b'\x89PNG\r\n\x1a\n' + b'\x00' * 40, b'not an image at all'])
def test_error_corrupt_png(tool: ModuleType, tmp_path: Path, content: bytes) -> None:
    split = make_split(tmp_path)
    bad = split / 'HR' / 'NIR' / '0002.png'
    bad.write_bytes(content)
    _expect_error(tool, split, str(bad))


def test_error_non_png_file(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path)
    stray = split / 'HR' / 'VIS' / 'notes.txt'
    stray.write_text('hello')
    _expect_error(tool, split, str(stray), 'not a PNG')


def test_error_vis_nir_size_mismatch(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path)
    bad = split / 'HR' / 'NIR' / '0001.png'
    cv2.imwrite(str(bad), np.zeros((24, 20), np.uint8))
    _expect_error(tool, split, 'size mismatch', str(bad), str(split / 'HR' / 'VIS' / '0001.png'))


def test_error_lr_size_not_hr_over_scale(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path)
    bad = split / 'LR_bicubic' / 'X4' / 'VIS' / 'scene_3.png'
    cv2.imwrite(str(bad), np.zeros((5, 6, 3), np.uint8))
    _expect_error(tool, split, str(bad), 'HR / 4')


def test_error_8bit_disparity(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path)
    bad = split / 'HR' / 'DISP_R' / '0001.png'
    cv2.imwrite(str(bad), np.zeros(HR_SIZE, np.uint8))
    _expect_error(tool, split, str(bad), 'uint16')


def test_error_meta_info_mismatch(tool: ModuleType, tmp_path: Path) -> None:
    split = make_split(tmp_path)
    (split / 'meta_info.txt').write_text('0001.png (24,24,3)\n0002.png (24,24,3)\n')
    _expect_error(tool, split, str(split / 'meta_info.txt'), 'scene_3.png')


def test_main_returns_2_on_user_error(tool: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert commands.create_lmdb(['--input', str(tmp_path / 'missing')]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / 'missing') in err and 'Traceback' not in err


def test_cli_subprocess(tmp_path: Path) -> None:
    split = make_split(tmp_path)
    output = tmp_path / 'cli_out'
    command = [sys.executable, str(TOOL), '--input', str(split), '--output', str(output),
               '--compress-level', '3', '--n-thread', '1']
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f'Wrote {len(STREAMS)} LMDBs' in done.stdout and str(output) in done.stdout
    assert (output / 'meta_info.txt').is_file()
    for rel in STREAMS:
        lines = (output / f'{rel}.lmdb' / 'meta_info.txt').read_text().splitlines()
        assert len(lines) == len(KEYS) and all(line.endswith(' 3') for line in lines)

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2
    assert str(output) in again.stderr and 'already exists' in again.stderr
    assert 'Traceback' not in again.stderr
