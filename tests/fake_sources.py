"""Fake downloads of the public RGB-NIR data sets (pairs, rgbnir-stereo, nirscene, ranus) and checks of the
splits ``tools/prepare_data.py`` writes from them, shared by the tests of ``tests/test_prep/test_prepare*.py``."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
from basicsr.utils.matlab_functions import imresize

from cspsr_arch.prep.sources import STEREO_SPLITS

STEREO_SIZE = (53, 70)  # H, W: cropped to 52 x 68 for scales 2 and 4
# Keypoints of the fake stereo test frames: 0-based column, row, disparity (pixels), class. The last two lie
# in the cropped-off column 68..69 and row 52.


POINTS = np.array([[10, 5, 3.5, 1], [67, 51, 12.25, 2], [0, 0, 0.5, 3], [40, 20, 7.0, 0], [69, 10, 2.0, 1],
                   [30, 52, 1.0, 2]], np.float64)


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


def _error(tool, capsys, root: Path, *fragments: str, layout: str = 'pairs', extra=()) -> None:
    assert _run(tool, layout, '--root', str(root), '--out', str(root.parent / 'out'), *extra) == 2
    err = capsys.readouterr().err
    assert 'prepare_data.py: error:' in err or 'invalid choice' in err
    for fragment in fragments:
        assert fragment in err, err
