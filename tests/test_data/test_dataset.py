"""PairedCrossSpectralDataset: modes, alignment, stereo augmentation and clear errors."""
import random
import shutil

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from toy_data import dataset_opt, make_toy_split

from cspsr_arch.data.stereo_transforms import stereo_flip
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.lmdb import create_lmdbs

Dataset = DATASET_REGISTRY.get('PairedCrossSpectralDataset')


def test_sample_contents_and_disparity(toy_split):
    split, scenes = toy_split
    ds = Dataset(dataset_opt(split, scale=4))
    assert len(ds) == 2
    sample = ds[0]
    assert sample['lq'].shape == (3, 12, 14) and sample['gt'].shape == (3, 48, 56)
    assert sample['lq_nir'].shape == (1, 12, 14) and sample['gt_nir'].shape == (1, 48, 56)
    assert torch.allclose(sample['disp'], torch.ones(1, 12, 14))  # 4 HR px = 1 LR px at x4
    gt = scenes['a']['vis'][..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255  # BGR -> RGB, CHW
    assert np.allclose(sample['gt'].numpy(), gt, atol=1e-6)
    assert sample['gt_path'].endswith('a.png') and sample['lq_nir_path'].endswith('a.png')


def test_three_modes_give_identical_samples(toy_split):
    split, _ = toy_split
    create_lmdbs(str(split), progress=False)
    folder = Dataset(dataset_opt(split, scale=2))
    meta = Dataset(dataset_opt(split, scale=2, meta_info_file=str(split / 'meta_info.txt')))
    lmdb = Dataset(dataset_opt(split, scale=2, lmdb=True))
    cached = Dataset(dataset_opt(split, scale=2, cache_in_memory=True))
    assert len(folder) == len(meta) == len(lmdb) == len(cached) == 2
    for _ in range(2):  # the second pass reads the cache
        for i in range(2):
            a, b, c, d = folder[i], meta[i], lmdb[i], cached[i]
            for key in ('lq', 'lq_nir', 'gt', 'gt_nir', 'disp', 'disp_r'):
                assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key]) and torch.equal(a[key], d[key]), key
    assert sorted(cached.cache) == [0, 1]


def test_random_crops_are_aligned(tmp_path):
    """Crops of every stream come from the same place: LR = imresize(HR) holds on the crop."""
    split = tmp_path / 'train'
    make_toy_split(split, size=64, scales=(4, ))
    opt = dataset_opt(split, scale=4, phase='train', gt_size=32, use_hflip=False, use_vflip=False)
    ds = Dataset(opt)
    full = Dataset(dataset_opt(split, scale=4))[0]
    random.seed(3)
    for _ in range(5):
        crop = ds[0]
        # locate the LR crop inside the full LR image; the HR crop must be at scale x that offset
        lq, lq_full = crop['lq'].numpy(), full['lq'].numpy()
        matches = [(y, x) for y in range(lq_full.shape[1] - 7) for x in range(lq_full.shape[2] - 7)
                   if np.array_equal(lq_full[:, y:y + 8, x:x + 8], lq)]
        assert len(matches) == 1
        y, x = matches[0]
        assert torch.equal(crop['gt'], full['gt'][:, 4 * y:4 * y + 32, 4 * x:4 * x + 32])
        assert torch.equal(crop['gt_nir'], full['gt_nir'][:, 4 * y:4 * y + 32, 4 * x:4 * x + 32])
        assert torch.equal(crop['lq_nir'], full['lq_nir'][:, y:y + 8, x:x + 8])
        assert torch.equal(crop['disp'], full['disp'][:, y:y + 8, x:x + 8])


def test_hflip_negates_disparity_and_keeps_geometry():
    """After a horizontal flip, NIR_l(x) = NIR_r(x - d(x)) still holds with the flipped, negated disparity."""
    rng = np.random.default_rng(0)
    scene = rng.random((6, 30)).astype(np.float32)
    shift = 3
    left, right = scene[:, :24], scene[:, shift:shift + 24]
    disp = np.full((6, 24, 1), float(shift), np.float32)
    out = stereo_flip({'lq': left[..., None], 'lq_nir': right[..., None], 'disp': disp}, hflip=True, vflip=True)
    d = out['disp'][..., 0]
    assert np.all(d == -shift)
    xs = np.arange(24)
    for y in range(6):
        src = xs - d[y].astype(int)
        ok = (src >= 0) & (src < 24)
        assert np.array_equal(out['lq'][y, ok, 0], out['lq_nir'][y, src[ok], 0])


def test_rotation_is_refused(toy_split):
    split, _ = toy_split
    with pytest.raises(CSPSRInputError, match='use_rot'):
        Dataset(dataset_opt(split, scale=4, phase='train', gt_size=16, use_rot=True))


def test_missing_stream_file_is_named(toy_split):
    split, _ = toy_split
    missing = split / 'LR_bicubic' / 'X4' / 'NIR' / 'b.png'
    missing.unlink()
    with pytest.raises(CSPSRInputError, match=str(split / 'LR_bicubic' / 'X4' / 'NIR' / 'b')):
        Dataset(dataset_opt(split, scale=4))
    with pytest.raises(CSPSRInputError, match='b.png'):
        Dataset(dataset_opt(split, scale=4, meta_info_file=str(split / 'meta_info.txt')))


def test_unmatched_extra_file_is_named(toy_split):
    split, _ = toy_split
    shutil.copy(split / 'HR' / 'NIR' / 'a.png', split / 'HR' / 'NIR' / 'zzz.png')
    with pytest.raises(CSPSRInputError, match='zzz.png'):
        Dataset(dataset_opt(split, scale=4))


def test_vis_nir_size_mismatch_is_named(toy_split):
    split, _ = toy_split
    path = split / 'LR_bicubic' / 'X4' / 'NIR' / 'a.png'
    cv2.imwrite(str(path), np.zeros((10, 14), np.uint8))
    with pytest.raises(CSPSRInputError, match=f'{path}.*does not match'):
        Dataset(dataset_opt(split, scale=4))[0]


def test_hr_not_divisible_is_an_error(toy_split):
    split, _ = toy_split
    path = split / 'HR' / 'VIS' / 'a.png'
    cv2.imwrite(str(path), np.zeros((47, 56, 3), np.uint8))
    with pytest.raises(CSPSRInputError, match='multiple of the scale'):
        Dataset(dataset_opt(split, scale=4))[0]


def test_bad_channels_and_corrupt_files(toy_split):
    split, _ = toy_split
    nir = split / 'HR' / 'NIR' / 'a.png'
    three = np.zeros((48, 56, 3), np.uint8)
    three[..., 2] = 9
    cv2.imwrite(str(nir), three)
    ds = Dataset(dataset_opt(split, scale=4))
    with pytest.raises(CSPSRInputError, match=f'{nir}.*3 channels that differ'):
        ds[0]
    vis = split / 'HR' / 'VIS' / 'b.png'
    cv2.imwrite(str(vis), np.zeros((48, 56), np.uint8))
    with pytest.raises(CSPSRInputError, match=f'{vis}.*3 channels'):
        ds[1]
    vis.write_bytes(vis.read_bytes()[:40])
    with pytest.raises(CSPSRInputError, match=f'{vis}.*corrupt or truncated'):
        ds[1]


def test_missing_lmdb_key_is_named(toy_split):
    split, _ = toy_split
    create_lmdbs(str(split), progress=False)
    meta = split.parent / 'train_lmdb' / 'LR_bicubic' / 'X2' / 'NIR.lmdb' / 'meta_info.txt'
    meta.write_text(meta.read_text().splitlines()[0] + '\n')
    with pytest.raises(CSPSRInputError, match="NIR.lmdb lacks the key 'b'"):
        Dataset(dataset_opt(split, scale=2, lmdb=True))


def test_missing_dataroot_says_how_to_prepare(tmp_path):
    with pytest.raises(CSPSRInputError, match='does not exist. Prepare the data'):
        Dataset(dataset_opt(tmp_path / 'nowhere', scale=4))


def test_cached_training_crops_leave_the_cache_intact(toy_split):
    split, _ = toy_split
    ds = Dataset(dataset_opt(split, scale=4, phase='train', gt_size=48, use_hflip=True, use_vflip=True,
                             cache_in_memory=True))
    fresh = ds._load(0)
    random.seed(0)
    for _ in range(8):  # full-size crops + flips: any in-place change would show in the cache
        for value in ds[0].values():
            if isinstance(value, torch.Tensor):
                value.mul_(0)
    for key, value in fresh.items():
        assert np.array_equal(ds.cache[0][key], value), key


def test_stereo_flip_always_returns_copies():
    sample = {'lq': np.zeros((4, 4, 3), np.float32), 'disp': np.ones((4, 4, 1), np.float32)}
    for hflip in (False, True):
        for vflip in (False, True):
            out = stereo_flip(sample, hflip, vflip)
            assert not any(np.shares_memory(out[k], sample[k]) for k in sample)


def test_random_crops_keep_ramp_disparities_aligned(tmp_path):
    """Left and right disparity maps that vary along x and y are cropped at the place of the images."""
    from cspsr_arch.image_io import encode_disparity
    split = tmp_path / 'train'
    make_toy_split(split, keys=('a', ), size=64, scales=(4, ))
    ys, xs = np.mgrid[0:16, 0:18].astype(np.float64)
    lr = split / 'LR_bicubic' / 'X4'
    cv2.imwrite(str(lr / 'DISP_L' / 'a.png'), encode_disparity(1 + 0.25 * xs + 0.5 * ys))
    cv2.imwrite(str(lr / 'DISP_R' / 'a.png'), encode_disparity(9 - 0.125 * xs + 0.75 * ys))
    full = Dataset(dataset_opt(split, scale=4))[0]
    seen = set()
    for hflip in (False, True):
        ds = Dataset(dataset_opt(split, scale=4, phase='train', gt_size=32, use_hflip=hflip, use_vflip=False))
        random.seed(5)
        for _ in range(6):
            crop = ds[0]
            flipped = hflip and torch.equal(crop['disp'], -crop['disp'].abs())  # negated by the flip
            lq = crop['lq'].flip(-1) if flipped else crop['lq']
            matches = [(y, x) for y in range(16 - 7) for x in range(18 - 7)
                       if torch.equal(full['lq'][:, y:y + 8, x:x + 8], lq)]
            assert len(matches) == 1
            y, x = matches[0]
            seen.add((x, flipped))
            for key in ('disp', 'disp_r'):
                expected = full[key][:, y:y + 8, x:x + 8]
                assert torch.equal(crop[key], -expected.flip(-1) if flipped else expected), (key, y, x, flipped)
    assert {f for _, f in seen} == {False, True} and len({x for x, _ in seen}) > 2


def test_stereo_flip_by_value():
    img = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    disp = img + 1
    out = stereo_flip({'lq': img, 'disp': disp}, hflip=False, vflip=True)
    assert np.array_equal(out['lq'], img[::-1]) and np.array_equal(out['disp'], disp[::-1])  # rows only: no sign
    out = stereo_flip({'lq': img, 'disp_r': disp}, hflip=True, vflip=False)
    assert np.array_equal(out['lq'], img[:, ::-1]) and np.array_equal(out['disp_r'], -disp[:, ::-1])
    assert all(v.flags['C_CONTIGUOUS'] for v in out.values())


def test_random_stereo_flip_draws_each_flip_half_of_the_time():
    from cspsr_arch.data.stereo_transforms import random_stereo_flip
    img = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    random.seed(0)
    seen = {'h': 0, 'v': 0}
    for _ in range(400):
        out = random_stereo_flip({'lq': img}, True, True)['lq']
        seen['h'] += bool(out[0, 0, 0] in (2, 5))  # a mirrored row starts with its last value
        seen['v'] += bool(out[0, 0, 0] >= 3)  # the second row came first
    assert 160 < seen['h'] < 240 and 160 < seen['v'] < 240, seen
    assert np.array_equal(random_stereo_flip({'lq': img}, False, False)['lq'], img)
