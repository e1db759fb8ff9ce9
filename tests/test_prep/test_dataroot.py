"""The dataset's one ``dataroot: <split folder>`` option: the streams follow from the layout of
:mod:`cspsr_arch.prep.split`, disk or LMDB is detected, and it gives exactly the samples of the per-stream keys."""
import gc
import shutil

import pytest
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from toy_data import dataset_opt, make_toy_split

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.engine.options import check_datasets
from cspsr_arch.prep.lmdb import create_lmdbs

Dataset = DATASET_REGISTRY.get('PairedCrossSpectralDataset')
STREAMS = ('lq', 'lq_nir', 'gt', 'gt_nir', 'disp', 'disp_r')


def _one_root(root, scale: int, **extra) -> dict:
    return {'name': 'toy', 'type': 'PairedCrossSpectralDataset', 'phase': 'val', 'scale': scale,
            'dataroot': str(root), **extra}


def _samples(opt: dict) -> list:
    """Every sample of a dataset, read at once (an LMDB may be open only once per process: it closes after)."""
    dataset = Dataset(opt)
    samples = [dataset[i] for i in range(len(dataset))]
    backend = dataset.io_backend_opt['type']
    del dataset
    gc.collect()
    return samples, backend


def _same_samples(a: list, b: list, paths: bool = True) -> None:
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert sorted(k for k in x if not k.endswith('_path')) == sorted(STREAMS)
        for key in STREAMS:
            assert torch.equal(x[key], y[key]), key
            assert not paths or x[f'{key}_path'] == y[f'{key}_path'], key


@pytest.mark.parametrize('scale', [2, 4])
def test_dataroot_gives_the_samples_of_the_per_stream_keys_disk_and_lmdb(toy_split, scale):
    split, _ = toy_split
    create_lmdbs(str(split), progress=False)
    disk, disk_backend = _samples(_one_root(split, scale))
    lmdb, lmdb_backend = _samples(_one_root(split.parent / 'train_lmdb', scale))
    assert (disk_backend, lmdb_backend) == ('disk', 'lmdb')
    _same_samples(disk, _samples(dataset_opt(split, scale))[0])
    _same_samples(lmdb, _samples(dataset_opt(split, scale, lmdb=True))[0])
    _same_samples(disk, lmdb, paths=False)  # file paths vs LMDB keys; the tensors agree
    train = Dataset(_one_root(split, scale, phase='train', gt_size=16, use_vflip=True))
    assert train[0]['gt'].shape == (3, 16, 16)


def test_optional_streams_follow_what_the_split_holds(tmp_path):
    split = tmp_path / 'train'
    make_toy_split(split, scales=(2, ), with_disp=False)
    shutil.rmtree(split / 'HR' / 'NIR')
    sample = Dataset(_one_root(split, 2))[0]
    assert sorted(k for k in sample if not k.endswith('_path')) == ['gt', 'lq', 'lq_nir']


def test_dataroot_errors_name_the_path_and_the_fix(toy_split, tmp_path):
    split, _ = toy_split
    with pytest.raises(CSPSRInputError, match=f'dataroot {tmp_path / "nowhere"} is not a folder.*prepare_data.py'):
        Dataset(_one_root(tmp_path / 'nowhere', 4))
    with pytest.raises(CSPSRInputError, match=f'{split / "LR_bicubic" / "X3" / "VIS"} is missing.*--scales 3'):
        Dataset(_one_root(split, 3))
    shutil.rmtree(split / 'LR_bicubic' / 'X2' / 'NIR')
    with pytest.raises(CSPSRInputError, match=f'{split / "LR_bicubic" / "X2" / "NIR"} is missing'):
        Dataset(_one_root(split, 2))
    both = _one_root(split, 4, dataroot_gt=str(split / 'HR' / 'VIS'))
    with pytest.raises(CSPSRInputError, match='either dataroot .* or the per-stream keys \\(dataroot_gt\\), not both'):
        Dataset(both)
    with pytest.raises(CSPSRInputError, match="io_backend type is 'lmdb' but dataroot .* holds image folders"):
        Dataset(_one_root(split, 4, io_backend={'type': 'lmdb'}))


def test_options_check_accepts_dataroot_and_still_refuses_unknown_keys(toy_split):
    split, _ = toy_split
    check_datasets({'datasets': {'val': _one_root(split, 4)}})
    with pytest.raises(CSPSRInputError, match="Unknown option 'datasets:val:dataroots'"):
        check_datasets({'datasets': {'val': {**_one_root(split, 4), 'dataroots': 'x'}}})
    with pytest.raises(CSPSRInputError, match="Data not found: 'datasets:val:dataroot'"):
        check_datasets({'datasets': {'val': _one_root(split.parent / 'missing', 4)}})
