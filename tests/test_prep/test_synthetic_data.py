"""Tests of the synthetic generator (``cspsr_arch.prep.synthetic.build``, ``tools/make_synthetic_rgbnir.py``): layout, LR = imresize(HR), determinism, stereo geometry,
NIR spectral response, disparity encoding and the command line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize

from cspsr_arch.prep import commands
from cspsr_arch.prep.split import to_u8

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'make_synthetic_rgbnir.py'
SCALES = (2, 3, 4)
SCENES = ('textures', 'astronaut', 'motorcycle')
TEST_SCENES = ('motorcycle',)
MAX_SIZE = 192
VARIANTS = 2
STREAMS = ('VIS', 'NIR', 'DISP_L', 'DISP_R')


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    """The generator's library module (its command line is ``tools/make_synthetic_rgbnir.py``)."""
    from cspsr_arch.prep.synthetic import build
    return build


@pytest.fixture(scope='module')
def dataset(tool: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Dict[str, List[str]]]:
    """A small data set (3 scenes, scales 2/3/4) written once for the module."""
    out = tmp_path_factory.mktemp('synthetic')
    keys = tool.make_dataset(out, scales=SCALES, seed=0, scenes=SCENES, test_scenes=TEST_SCENES,
                             max_size=MAX_SIZE, variants=VARIANTS)
    return out, keys


def _read(path: Path) -> np.ndarray:
    """Read a PNG unchanged (uint8 VIS/NIR, uint16 disparity)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def _files(folder: Path) -> List[str]:
    """Sorted file names of a folder."""
    return sorted(p.name for p in folder.iterdir())


def _warp_from_right(right: np.ndarray, d_l: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Bilinear sample of a right-view image at ``x - d_l`` (left view); returns (warped, inside mask).

    Args:
        right: right-view image (H, W), float.
        d_l: left disparity (H, W).
    """
    h, w = d_l.shape
    x = np.arange(w)[None, :] - d_l
    x0 = np.floor(x).astype(np.int64)
    frac = x - x0
    inside = (x0 >= 0) & (x0 + 1 <= w - 1)
    x0 = np.clip(x0, 0, w - 2)
    ys = np.arange(h)[:, None]
    return right[ys, x0] * (1 - frac) + right[ys, x0 + 1] * frac, inside


def _lr_consistent(d_l: np.ndarray, d_r: np.ndarray, tol: float = 1.0) -> np.ndarray:
    """Left pixels whose right correspondence ``x - d_l`` has ``d_r`` within ``tol`` of ``d_l``."""
    w = d_l.shape[1]
    xr = np.round(np.arange(w)[None, :] - d_l).astype(np.int64)
    seen = np.take_along_axis(d_r, np.clip(xr, 0, w - 1), 1)
    return (xr >= 0) & (np.abs(seen - d_l) < tol)


def test_layout_and_meta_info(dataset: Tuple[Path, Dict[str, List[str]]]) -> None:
    out, keys = dataset
    assert keys == {'train': sorted(f'{s}_v{v}' for s in SCENES if s not in TEST_SCENES for v in range(VARIANTS)),
                    'test': list(TEST_SCENES)}
    assert sorted(p.name for p in out.iterdir()) == ['test', 'train']
    for split, split_keys in keys.items():
        root = out / split
        names = [f'{k}.png' for k in split_keys]
        assert _files(root) == ['HR', 'LR_bicubic', 'meta_info.txt']
        assert _files(root / 'HR') == sorted(STREAMS)
        assert _files(root / 'LR_bicubic') == sorted(f'X{s}' for s in SCALES)
        folders = [root / 'HR' / st for st in STREAMS]
        folders += [root / 'LR_bicubic' / f'X{s}' / st for s in SCALES for st in STREAMS]
        for folder in folders:
            assert _files(folder) == names, folder
        lines = (root / 'meta_info.txt').read_text().splitlines()
        expected = []
        for key in split_keys:
            vis = _read(root / 'HR' / 'VIS' / f'{key}.png')
            assert vis.dtype == np.uint8 and vis.ndim == 3 and vis.shape[2] == 3
            expected.append(f'{key}.png ({vis.shape[0]},{vis.shape[1]},3)')
            nir = _read(root / 'HR' / 'NIR' / f'{key}.png')
            assert nir.dtype == np.uint8 and nir.shape == vis.shape[:2]
            for st in ('DISP_L', 'DISP_R'):
                disp = _read(root / 'HR' / st / f'{key}.png')
                assert disp.dtype == np.uint16 and disp.shape == vis.shape[:2]
        assert lines == sorted(expected)


def test_sizes_divisible_and_lr_equals_imresize(dataset: Tuple[Path, Dict[str, List[str]]]) -> None:
    out, keys = dataset
    for split, split_keys in keys.items():
        root = out / split
        for key in split_keys:
            hr = {st: _read(root / 'HR' / st / f'{key}.png') for st in STREAMS}
            h, w = hr['NIR'].shape
            assert max(h, w) <= MAX_SIZE
            for s in SCALES:
                assert h % s == 0 and w % s == 0
                lr_dir = root / 'LR_bicubic' / f'X{s}'
                for st in ('VIS', 'NIR'):
                    lr = _read(lr_dir / st / f'{key}.png')
                    assert lr.shape[:2] == (h // s, w // s)
                    ref = np.round(np.clip(imresize(hr[st].astype(np.float32) / 255.0, 1.0 / s), 0, 1) * 255)
                    diff = np.abs(lr.astype(np.float64) - ref)
                    assert diff.max() <= 1 and diff.mean() < 0.01, (key, s, st)
                for st in ('DISP_L', 'DISP_R'):
                    lr = _read(lr_dir / st / f'{key}.png').astype(np.float64) / 256
                    ref = hr[st].astype(np.float64).reshape(h // s, s, w // s, s).mean(axis=(1, 3)) / 256 / s
                    assert np.abs(lr - ref).max() <= 1.0 / 256 + 1e-9, (key, s, st)


def test_disparity_range_and_consistency(dataset: Tuple[Path, Dict[str, List[str]]]) -> None:
    out, keys = dataset
    for split, split_keys in keys.items():
        for key in split_keys:
            d_l = _read(out / split / 'HR' / 'DISP_L' / f'{key}.png') / 256.0
            d_r = _read(out / split / 'HR' / 'DISP_R' / f'{key}.png') / 256.0
            w = d_l.shape[1]
            # meaningful at x4 (> ~1.5 LR px at the far end of the range), yet within a sane stereo range
            assert 0.025 * w <= d_l.max() <= 0.15 * w, (key, d_l.max())
            assert d_l.min() >= 0 and d_r.min() >= 0
            assert abs(np.percentile(d_l, 90) - np.percentile(d_r, 90)) < 0.1 * d_l.max()
            assert _lr_consistent(d_l, d_r).mean() > 0.85, key
            for s in SCALES:  # the LR maps follow the same convention in LR pixels
                lr_l = _read(out / split / 'LR_bicubic' / f'X{s}' / 'DISP_L' / f'{key}.png') / 256.0
                lr_r = _read(out / split / 'LR_bicubic' / f'X{s}' / 'DISP_R' / f'{key}.png') / 256.0
                assert abs(lr_l.max() - d_l.max() / s) < 0.1 * d_l.max() / s
                assert _lr_consistent(lr_l, lr_r).mean() > 0.75, (key, s)


def test_geometry_nir_right_warps_to_left(tool: ModuleType, dataset: Tuple[Path, Dict[str, List[str]]]) -> None:
    out, keys = dataset
    for split, split_keys in keys.items():
        for key in split_keys:
            name, variant = (key, 0) if split == 'test' else (key.rsplit('_v', 1)[0], int(key.rsplit('_v', 1)[1]))
            sample = tool.render_scene(name, seed=0, variant=variant, max_size=MAX_SIZE, scales=SCALES)
            nir_r = _read(out / split / 'HR' / 'NIR' / f'{key}.png').astype(np.float64)
            assert np.array_equal(to_u8(sample['nir']), nir_r.astype(np.uint8))  # the function is the file
            d_l = _read(out / split / 'HR' / 'DISP_L' / f'{key}.png') / 256.0
            d_r = _read(out / split / 'HR' / 'DISP_R' / f'{key}.png') / 256.0
            nir_l = sample['nir_left'].astype(np.float64) * 255
            warped, inside = _warp_from_right(nir_r, d_l)
            visible = inside & _lr_consistent(d_l, d_r) & ~sample['occ_left']
            assert visible.mean() > 0.8, key
            err = np.abs(warped - nir_l)[visible].mean()
            unwarped = np.abs(nir_r - nir_l).mean()  # the views really differ
            assert err < 4.0, (key, err)  # interpolation, 1 grey level of NIR noise, mixed pixels at depth edges
            assert unwarped > 8.0 and err < 0.2 * unwarped, (key, err, unwarped)


def test_nir_spectral_response(tool: ModuleType, dataset: Tuple[Path, Dict[str, List[str]]]) -> None:
    out, keys = dataset
    for split, split_keys in keys.items():
        for key in split_keys:  # NIR is not the VIS luminance, even after alignment
            d_l = _read(out / split / 'HR' / 'DISP_L' / f'{key}.png') / 256.0
            nir, inside = _warp_from_right(_read(out / split / 'HR' / 'NIR' / f'{key}.png').astype(np.float64), d_l)
            vis = cv2.cvtColor(_read(out / split / 'HR' / 'VIS' / f'{key}.png'), cv2.COLOR_BGR2GRAY).astype(np.float64)
            assert np.abs(nir - vis)[inside].mean() > 8.0, key
    sample = tool.render_scene('textures', seed=0, variant=0, max_size=MAX_SIZE, scales=SCALES)
    clean, nir = sample['clean'], sample['nir_left']
    r, g, b = clean[..., 0], clean[..., 1], clean[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    veg, sky = (g > r + 0.1) & (g > b + 0.1), (b > r + 0.2) & (b > g + 0.1)
    assert veg.mean() > 0.1 and sky.mean() > 0.02
    # vegetation is much brighter relative to its luminance than blue sky
    assert (nir - luma)[veg].mean() > (nir - luma)[sky].mean() + 0.2
    # direct check of the response: green leaf bright, blue dark, equal-luminance grey in between
    patch = np.zeros((16, 48, 3), np.float32)
    patch[:, :16], patch[:, 16:32], patch[:, 32:] = (0.2, 0.6, 0.15), (0.2, 0.3, 0.9), (0.45, 0.45, 0.45)
    resp = tool.nir_response(patch)
    leaf, blue, grey = resp[4:12, 4:12].mean(), resp[4:12, 20:28].mean(), resp[4:12, 36:44].mean()
    assert leaf > grey + 0.1 and blue < grey - 0.1


def test_vis_effects(tool: ModuleType) -> None:
    seen = set()
    for name in ('textures', 'color', 'coffee'):
        for variant in range(4):
            sample = tool.render_scene(name, seed=3, variant=variant, max_size=96, scales=(2, 4))
            effects = sample['effects']
            assert 1 <= len(effects) <= 3
            seen.update(e.split('(')[0] for e in effects)
            # residual sensor noise alone is mild by design (a camera pipeline denoises): about 1 grey level
            least = 0.5 / 255 if all(e.startswith('noise') for e in effects) else 2.0 / 255
            assert np.abs(sample['vis'] - sample['clean']).mean() > least, (name, variant, effects)
    assert seen == {'haze', 'low_light', 'overexposed', 'noise'}


def test_determinism(tool: ModuleType, tmp_path: Path) -> None:
    kwargs = dict(scales=(2, 4), scenes=('textures', 'color'), test_scenes=('color',), max_size=96, variants=1)
    runs = {}
    for name, seed in (('a', 5), ('b', 5), ('c', 6)):
        tool.make_dataset(tmp_path / name, seed=seed, **kwargs)
        runs[name] = {p.relative_to(tmp_path / name): p.read_bytes()
                      for p in sorted((tmp_path / name).rglob('*')) if p.is_file()}
    assert len(runs['a']) == 2 * (1 + 4 * 3)
    assert runs['a'] == runs['b']
    assert runs['a'].keys() == runs['c'].keys()
    changed = [p for p in runs['a'] if runs['a'][p] != runs['c'][p]]
    assert any('VIS' in str(p) for p in changed) and any('NIR' in str(p) for p in changed)
    assert any('DISP_L' in str(p) for p in changed)


def test_disparity_encoding_round_trip(tool: ModuleType, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 255.99, (17, 23)).astype(np.float32)
    enc = tool.encode_disp(d)
    assert enc.dtype == np.uint16
    path = tmp_path / 'd.png'
    assert cv2.imwrite(str(path), enc)
    back = tool.decode_disp(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
    assert back.dtype == np.float32 and np.abs(back - d).max() <= 0.5 / 256 + 1e-6
    assert tool.encode_disp(np.array([-1.0, 0.0, 1.5, 300.0])).tolist() == [0, 0, 384, 65535]


def test_refuses_non_empty_split_and_cli(tool: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ['--out', str(tmp_path), '--scales', '2', '4', '--scenes', 'color', 'textures', '--test-scenes', 'color',
            '--max-size', '64', '--variants', '1']
    run = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert 'wrote train: 1, test: 1 scenes' in run.stdout
    first = (tmp_path / 'train' / 'HR' / 'VIS' / 'textures_v0.png').read_bytes()
    capsys.readouterr()
    assert commands.make_synthetic_rgbnir(args) == 2  # same entry point in-process (saves a second interpreter start)
    assert '--overwrite' in capsys.readouterr().err
    with pytest.raises(FileExistsError):
        tool.make_dataset(tmp_path, scales=(2, 4), scenes=('color',), test_scenes=('color',), max_size=64)
    (tmp_path / 'train' / 'HR' / 'VIS' / 'stale.png').write_bytes(b'x')
    assert commands.make_synthetic_rgbnir([*args, '--overwrite']) == 0
    assert not (tmp_path / 'train' / 'HR' / 'VIS' / 'stale.png').exists()
    assert (tmp_path / 'train' / 'HR' / 'VIS' / 'textures_v0.png').read_bytes() == first
    with pytest.raises(ValueError):
        tool.make_dataset(tmp_path / 'x', scenes=('nope',))
    with pytest.raises(ValueError):
        tool.make_dataset(tmp_path / 'y', scales=(1, 2), scenes=('color',))


def test_test_only_extra_scenes_leave_the_training_split_byte_identical(tool: ModuleType, tmp_path: Path) -> None:
    from cspsr_arch.prep.synthetic.scenes import EXTRA_SCENES, SCENES
    assert not set(EXTRA_SCENES) & set(SCENES)  # the default set (the demo's data) is unchanged
    base = dict(scales=(4, ), max_size=96, variants=1)
    tool.make_dataset(tmp_path / 'a', scenes=('color', 'coins'), test_scenes=('coins', ), **base)
    keys = tool.make_dataset(tmp_path / 'b', scenes=('color', 'coins', *EXTRA_SCENES),
                             test_scenes=('coins', *EXTRA_SCENES), **base)
    assert sorted(keys['test']) == sorted(['coins', *EXTRA_SCENES]) and keys['train'] == ['color_v0']
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}
    assert files(tmp_path / 'a' / 'train') == files(tmp_path / 'b' / 'train')
    test = tmp_path / 'b' / 'test'
    for name in EXTRA_SCENES:
        vis = cv2.imread(str(test / 'HR' / 'VIS' / f'{name}.png'))
        assert vis is not None and vis.std() > 5  # a real picture, not a blank frame
    with pytest.raises(ValueError, match='unknown scenes'):
        tool.make_dataset(tmp_path / 'c', scenes=('color', 'horse'), test_scenes=('horse', ), **base)
