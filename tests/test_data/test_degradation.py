"""The camera-degradation protocol: its noise model by value, fixed per key at test time, random in training."""
import numpy as np
import pytest
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from toy_data import dataset_opt

from cspsr_arch.data.degradation import GAMMA, CameraDegradation
from cspsr_arch.errors import CSPSRInputError

Dataset = DATASET_REGISTRY.get('PairedCrossSpectralDataset')


def test_exposure_without_noise_is_undone_by_the_gain():
    """With no noise, scaling the light by e and the signal by 1/e gives the 8-bit quantised input back."""
    img = np.random.default_rng(0).random((6, 7, 3)).astype(np.float32)
    deg = CameraDegradation({'vis': {'exposure': 0.1, 'shot': None}, 'nir': None})
    out, nir = deg(img, img[..., :1], key='a')
    assert np.array_equal(out, (np.round(img * 255) / 255).astype(np.float32))
    assert nir is not None and np.array_equal(nir, img[..., :1])  # NIR left clean


def test_noise_variance_follows_the_poisson_gaussian_model():
    """On a flat grey image the linear-light noise variance is (shot * x * e + read) / e^2, read from Brooks et al."""
    x_display = 0.5
    img = np.full((200, 200, 3), x_display, np.float32)
    exposure, shot = 0.25, 1e-3
    out, _ = CameraDegradation({'vis': {'exposure': exposure, 'shot': shot}})(img, img[..., :1], key='k')
    lin = out.astype(np.float64)**GAMMA
    x = x_display**GAMMA
    read = np.exp(2.18 * np.log(shot) + 1.20)
    expected = (shot * x * exposure + read) / exposure**2
    assert lin.var() == pytest.approx(expected, rel=0.05)
    assert lin.mean() == pytest.approx(x, abs=0.003)  # the gain restores the brightness
    strong, _ = CameraDegradation({'vis': {'exposure': exposure / 4, 'shot': shot}})(img, img[..., :1], key='k')
    assert (strong.astype(np.float64)**GAMMA).var() > 3 * lin.var()  # less light, more noise


def test_fixed_per_key_and_random_per_sample(toy_split):
    split, _ = toy_split
    clean = Dataset(dataset_opt(split, scale=2))
    test = Dataset(dataset_opt(split, scale=2, degradation={}))
    again = Dataset(dataset_opt(split, scale=2, cache_in_memory=True, degradation={}))
    for i in range(len(test)):
        a, b, c = test[i], again[i], again[i]  # c reads the cache
        for key in ('lq', 'lq_nir'):
            assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key]), key
            assert not torch.equal(a[key], clean[i][key]), key
        assert torch.equal(a['gt'], clean[i]['gt']) and torch.equal(a['gt_nir'], clean[i]['gt_nir'])
    assert not torch.equal(test[0]['lq'] - clean[0]['lq'], test[1]['lq'] - clean[1]['lq'])  # per key
    reseeded = Dataset(dataset_opt(split, scale=2, degradation={'seed': 1}))
    assert not torch.equal(reseeded[0]['lq'], test[0]['lq'])
    # the same inputs whatever the data-loader workers
    loader = torch.utils.data.DataLoader(test, batch_size=1, num_workers=2)
    for i, batch in enumerate(loader):
        assert torch.equal(batch['lq'][0], test[i]['lq']) and torch.equal(batch['lq_nir'][0], test[i]['lq_nir'])
    # training: a new degradation each time the sample is drawn, the HR untouched
    train = Dataset(dataset_opt(split, scale=2, phase='train', gt_size=24, degradation={}))
    np.random.seed(0)
    first = train[0]
    second = train[0]
    assert not torch.equal(first['lq'], second['lq'])


@pytest.mark.parametrize('opt, message', [
    ({'vis': {'exposure': [0.5, 0.1]}}, 'vis.exposure'),
    ({'vis': {'exposure': 2.0}}, 'vis.exposure'),
    ({'vis': {'noise': 0.1}}, 'degradation.vis takes'),
    ({'nir': {'jpeg': [50, 90]}}, 'nir.jpeg'),
    ({'blur': 1}, 'unknown degradation option'),
    ('camera', 'must be a mapping'),
])
def test_bad_options_are_refused(opt, message):
    with pytest.raises(CSPSRInputError, match=message):
        CameraDegradation(opt, 'demo')


def test_jpeg_step_changes_the_vis_deterministically():
    img = np.random.default_rng(1).random((32, 32, 3)).astype(np.float32)
    deg = CameraDegradation({'vis': {'exposure': None, 'shot': None, 'jpeg': [30, 30]}, 'nir': None})
    a, _ = deg(img, img[..., :1], key='x')
    b, _ = deg(img, img[..., :1], key='x')
    assert np.array_equal(a, b) and np.abs(a - img).mean() > 0.01


def test_the_resolved_block_spells_out_every_default():
    from cspsr_arch.data.degradation import CameraDegradation
    assert CameraDegradation({}).resolved() == {
        'vis': {'exposure': [1 / 32, 1 / 4], 'shot': [1e-4, 1e-3], 'jpeg': None},
        'nir': {'exposure': None, 'shot': [1e-4, 3e-4], 'jpeg': None}, 'seed': 0}
    block = CameraDegradation({'nir': None, 'vis': {'jpeg': [70, 90], 'exposure': 0.5}, 'seed': 3}).resolved()
    assert block == {'vis': {'exposure': [0.5, 0.5], 'shot': [1e-4, 1e-3], 'jpeg': [70.0, 90.0]}, 'nir': None,
                     'seed': 3}
