"""PairedCrossSpectralDataset with nir_scale: which NIR it reads, aligned crops at three resolutions, clear errors."""
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from basicsr.data.transforms import paired_random_crop
from basicsr.utils.registry import DATASET_REGISTRY
from toy_data import dataset_opt, make_toy_split

from cspsr_arch.data.crop import aligned_random_crop
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.lmdb import create_lmdbs
from cspsr_arch.prep.split import stream_dir

Dataset = DATASET_REGISTRY.get('PairedCrossSpectralDataset')
SCALE = 4
HR_H, HR_W = 32, 40  # LR 8 x 10
NIR_CODE = 1000  # NIR value of the fine pixel whose top-left HR pixel is (Y, X): Y * NIR_CODE + X


def _split_opt(split: Path, phase: str = 'val', **extra) -> dict:
    return {'name': 'toy', 'type': 'PairedCrossSpectralDataset', 'phase': phase, 'scale': SCALE, 'dataroot': str(split),
            **extra}


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def make_coordinate_split(split: Path, key: str = 'a') -> None:
    """A split whose every pixel encodes the HR coordinates (Y, X) of its top-left HR pixel, in 16-bit PNGs.

    VIS: blue = Y, green = X (RGB tensors: channel 2 = Y, channel 1 = X, in 1/65535); NIR: Y * NIR_CODE + X;
    disparities (LR): y * 16 + x of the LR pixel. Levels: HR, X2 and X4.
    """
    for level in (1, 2, 4):
        h, w = HR_H // level, HR_W // level
        ys, xs = np.mgrid[0:h, 0:w] * level
        vis = np.stack([ys, xs, np.zeros_like(ys)], axis=2).astype(np.uint16)
        scale = None if level == 1 else level
        _write(stream_dir(split, 'VIS', scale) / f'{key}.png', vis)
        _write(stream_dir(split, 'NIR', scale) / f'{key}.png', (ys * NIR_CODE + xs).astype(np.uint16))
    ly, lx = np.mgrid[0:HR_H // SCALE, 0:HR_W // SCALE]
    _write(stream_dir(split, 'DISP_L', SCALE) / f'{key}.png', ((ly * 16 + lx) * 256).astype(np.uint16))


def _coords(sample: dict, name: str) -> np.ndarray:
    """(2, h, w) HR coordinates (Y, X) encoded by a stream of a sample."""
    img = sample[name].numpy() * 65535
    if name in ('lq', 'gt'):
        return np.rint(np.stack([img[2], img[1]]))
    value = np.rint(img[0])
    return np.stack([value // NIR_CODE, value % NIR_CODE])


def test_nir_scale_equal_to_the_scale_reads_the_hr_nir(toy_split):
    split, scenes = toy_split
    ds = Dataset(_split_opt(split, nir_scale=SCALE))
    assert ds.roots['lq_nir'] == str(split / 'HR' / 'NIR')
    assert ds.roots['lq'] == str(split / 'LR_bicubic' / 'X4' / 'VIS')
    sample = ds[0]
    assert sample['lq'].shape == (3, 12, 14) and sample['lq_nir'].shape == (1, 48, 56)
    assert np.array_equal(np.rint(sample['lq_nir'][0].numpy() * 255), scenes['a']['nir'])
    assert sample['lq_nir_path'] == str(split / 'HR' / 'NIR' / 'a.png')


def test_an_intermediate_nir_scale_reads_the_nir_of_that_lr_level(toy_split):
    split, _ = toy_split
    sample = Dataset(_split_opt(split, nir_scale=2))[1]
    assert sample['lq_nir_path'] == str(split / 'LR_bicubic' / 'X2' / 'NIR' / 'b.png')
    want = cv2.imread(str(split / 'LR_bicubic' / 'X2' / 'NIR' / 'b.png'), cv2.IMREAD_UNCHANGED) / 255.0
    assert sample['lq_nir'].shape == (1, 24, 28) and np.allclose(sample['lq_nir'][0].numpy(), want, atol=1e-6)
    default = Dataset(_split_opt(split))[1]  # nir_scale 1: the NIR at the LR size, as before
    assert default['lq_nir_path'] == str(split / 'LR_bicubic' / 'X4' / 'NIR' / 'b.png')


@pytest.mark.parametrize('nir_scale, level', [(2, 'LR_bicubic/X2'), (4, 'HR')])
def test_lmdb_splits_follow_nir_scale(toy_split, nir_scale, level):
    """With nir_scale = scale, lq_nir and gt_nir are one LMDB, which LMDB opens once per process."""
    split, _ = toy_split
    create_lmdbs(str(split), progress=False)
    opts = [_split_opt(root, nir_scale=nir_scale) for root in (f'{split}_lmdb', split)]
    lmdb, folder = Dataset(opts[0]), Dataset(opts[1])
    assert lmdb.roots['lq_nir'] == f'{split}_lmdb/{level}/NIR.lmdb'
    for index in range(2):
        a, b = lmdb[index], folder[index]
        assert all(torch.equal(a[k], b[k]) for k in ('lq', 'lq_nir', 'gt', 'gt_nir', 'disp', 'disp_r'))
    assert a['lq_nir'].shape == (1, 12 * nir_scale, 14 * nir_scale)


@pytest.mark.parametrize('nir_scale', [2, 4])
@pytest.mark.parametrize('flips', [False, True])
def test_training_crops_of_every_stream_show_the_same_place(tmp_path, nir_scale, flips):
    """Every pixel encodes its HR coordinates: the crops of lq, lq_nir (f x), gt, gt_nir and disp must agree."""
    split = tmp_path / 'train'
    make_coordinate_split(split)
    ds = Dataset(_split_opt(split, phase='train', gt_size=16, nir_scale=nir_scale, use_hflip=flips, use_vflip=flips))
    random.seed(1)
    corners, flipped = set(), set()
    for _ in range(12):
        crop = ds[0]
        assert crop['lq'].shape == (3, 4, 4) and crop['lq_nir'].shape == (1, 4 * nir_scale, 4 * nir_scale)
        assert crop['gt'].shape == (3, 16, 16) and crop['gt_nir'].shape == (1, 16, 16)
        assert crop['disp'].shape == (1, 4, 4)
        gt = _coords(crop, 'gt')
        hflip, vflip = bool(gt[1, 0, 0] > gt[1, 0, -1]), bool(gt[0, 0, 0] > gt[0, -1, 0])
        flipped.add((hflip, vflip))
        unflip = lambda a: a[..., ::-1, :] if vflip else a  # noqa: E731
        unflip2 = lambda a: unflip(a[..., ::-1] if hflip else a)  # noqa: E731
        gt = unflip2(gt)
        top, left = gt[0, 0, 0], gt[1, 0, 0]
        assert top % SCALE == 0 and left % SCALE == 0
        corners.add((top, left))
        ys, xs = np.mgrid[0:16, 0:16]
        assert np.array_equal(gt, np.stack([top + ys, left + xs]))
        assert np.array_equal(unflip2(_coords(crop, 'gt_nir')), gt)
        step = SCALE // nir_scale  # HR pixels per NIR pixel
        assert np.array_equal(unflip2(_coords(crop, 'lq_nir')), gt[:, ::step, ::step])
        assert np.array_equal(unflip2(_coords(crop, 'lq')), gt[:, ::SCALE, ::SCALE])
        disp = unflip2(crop['disp'][0].numpy() * (-1 if hflip else 1))  # a horizontal flip negates disparities
        assert np.allclose(disp, (gt[0, ::SCALE, ::SCALE] // SCALE) * 16 + gt[1, ::SCALE, ::SCALE] // SCALE)
    assert len(corners) > 3  # the crops move
    assert not flips or len(flipped) > 2  # and flip


def test_the_crop_helper_draws_as_basicsr_and_refuses_small_images():
    rng = np.random.default_rng(0)
    lq, gt, nir = rng.random((9, 11, 3)), rng.random((36, 44, 3)), rng.random((18, 22, 1))
    random.seed(7)
    gt_ref, lq_ref = paired_random_crop(gt, lq, 16, 4)
    random.seed(7)
    ours = aligned_random_crop({'gt': gt, 'lq': lq, 'lq_nir': nir}, {'gt': 4, 'lq': 1, 'lq_nir': 2}, 4)
    assert np.array_equal(ours['gt'], gt_ref) and np.array_equal(ours['lq'], lq_ref)
    top, left = [int(v[0]) for v in np.nonzero(np.all(lq == lq_ref[0, 0], axis=2))]
    assert np.array_equal(ours['lq_nir'], nir[2 * top:2 * top + 8, 2 * left:2 * left + 8])
    with pytest.raises(ValueError, match=r'LQ \(9, 11\) is smaller than patch size \(10, 10\). Please remove x.png.'):
        aligned_random_crop({'lq': lq, 'lq_nir': nir}, {'lq': 1, 'lq_nir': 2}, 10, 'x.png')
    with pytest.raises(ValueError, match=r'Scale mismatches. lq_nir \(18, 22\) is not 4x multiplication of LQ'):
        aligned_random_crop({'lq': lq, 'lq_nir': nir}, {'lq': 1, 'lq_nir': 4}, 4)


def test_a_nir_of_the_wrong_size_names_the_file_and_the_fix(toy_split):
    split, _ = toy_split
    opt = dataset_opt(split, scale=SCALE, nir_scale=SCALE)  # per-stream keys: dataroot_lq_nir is still LR X4
    nir = split / 'LR_bicubic' / 'X4' / 'NIR' / 'a.png'
    with pytest.raises(CSPSRInputError) as err:
        Dataset(opt)[0]
    message = str(err.value)
    assert message.startswith(f'{nir}: size 14x12 (WxH)') and 'expected 56x48' in message
    assert 'nir_scale 4' in message and 'Point dataroot_lq_nir at the NIR of that size' in message
    ok = Dataset({**opt, 'dataroot_lq_nir': str(split / 'HR' / 'NIR')})[0]  # pointed at the right folder
    assert ok['lq_nir'].shape == (1, 48, 56)


def test_a_missing_nir_level_names_the_folder_and_the_fix(tmp_path):
    split = tmp_path / 'train'
    make_toy_split(split, scales=(4, ))
    with pytest.raises(CSPSRInputError) as err:
        Dataset(_split_opt(split, nir_scale=2))
    message = str(err.value)
    assert f"{split / 'LR_bicubic' / 'X2' / 'NIR'} is missing" in message and '--scales 4 2' in message
    for folder in (split / 'HR' / 'NIR').iterdir():
        folder.unlink()
    (split / 'HR' / 'NIR').rmdir()
    with pytest.raises(CSPSRInputError, match=f"{split / 'HR' / 'NIR'} is missing: with nir_scale 4 at scale 4"):
        Dataset(_split_opt(split, nir_scale=4))


@pytest.mark.parametrize('value', [3, 0, 8, 2.0, '2'])
def test_nir_scale_must_divide_the_scale(toy_split, value):
    with pytest.raises(CSPSRInputError, match=r'nir_scale is .*must divide the scale \(4\): one of \[1, 2, 4\]'):
        Dataset(dataset_opt(toy_split[0], scale=SCALE, nir_scale=value))


def test_camera_degradation_applies_to_the_fine_nir(toy_split):
    split, _ = toy_split
    clean = Dataset(_split_opt(split, nir_scale=2))[0]
    noisy = Dataset(_split_opt(split, nir_scale=2, degradation={'vis': None}))[0]
    assert noisy['lq_nir'].shape == clean['lq_nir'].shape == (1, 24, 28)
    assert torch.equal(noisy['lq'], clean['lq']) and torch.equal(noisy['gt_nir'], clean['gt_nir'])
    change = (noisy['lq_nir'] - clean['lq_nir']).abs()
    assert 0 < change.mean() < 0.05
