"""CSPSRModel with a NIR at the HR size (network_g:nir_scale = scale): data sets must agree; one training step."""
import pytest
import torch
from basicsr.models import build_model
from basicsr.utils.registry import DATASET_REGISTRY
from toy_data import make_toy_split

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.models.cspsr_model import check_nir_scales

NET = {'type': 'CSPSR', 'num_feat': 8, 'num_dmf': 2, 'upscale': 4, 'max_disp': 4, 'nir_scale': 4}


def _opt(datasets: dict) -> dict:
    return {
        'name': 'toy', 'model_type': 'CSPSRModel', 'scale': 4, 'num_gpu': 0, 'is_train': True, 'dist': False,
        'rank': 0, 'world_size': 1, 'network_g': dict(NET), 'path': {}, 'datasets': datasets,
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': 1e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
            'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0},
            'cssc_opt': {'type': 'CrossSpectralSpatialConsistencyLoss', 'loss_weight': 0.1},
        },
    }


def _dataset(split, phase='train', **extra) -> dict:
    return {'name': f'toy_{phase}', 'type': 'PairedCrossSpectralDataset', 'phase': phase, 'scale': 4,
            'dataroot': str(split), **extra}


@pytest.mark.parametrize('datasets, bad', [
    ({'train': {'nir_scale': 4}, 'val': {}}, 'val'),
    ({'train': {'nir_scale': 2}}, 'train'),
    ({'train': {'nir_scale': 4}, 'test_1': {'nir_scale': 4}, 'test_2': {'nir_scale': 1}}, 'test_2'),
])
def test_a_data_set_of_another_nir_scale_is_refused(datasets, bad):
    have = datasets[bad].get('nir_scale', 1)
    message = (f'datasets:{bad}:nir_scale is {have}, but network_g:nir_scale is 4.*'
               f'Set datasets:{bad}:nir_scale: 4.')
    with pytest.raises(CSPSRInputError, match=message):
        build_model(_opt(datasets))


def test_matching_nir_scales_pass_and_other_networks_are_not_checked():
    check_nir_scales(_opt({'train': {'nir_scale': 4}, 'val': {'nir_scale': 4}}))
    check_nir_scales({'network_g': {'type': 'CSPSR'}, 'datasets': {'train': {}, 'val': {'nir_scale': 1}}})
    check_nir_scales({'network_g': {'type': 'EDSR'}, 'datasets': {'train': {'nir_scale': 4}}})
    with pytest.raises(CSPSRInputError, match='network_g:nir_scale is 1'):
        check_nir_scales({'network_g': {'type': 'CSPSR'}, 'datasets': {'val': {'nir_scale': 2}}})


def test_one_training_step_with_the_nir_at_the_hr_size(tmp_path):
    split = tmp_path / 'train'
    make_toy_split(split, scales=(4, ))
    train_opt = _dataset(split, gt_size=32, nir_scale=4, use_vflip=True)
    ds = DATASET_REGISTRY.get('PairedCrossSpectralDataset')(train_opt)
    items = [ds[0], ds[1]]
    batch = {k: torch.stack([i[k] for i in items]) for k in items[0] if torch.is_tensor(items[0][k])}
    assert batch['lq'].shape == (2, 3, 8, 8) and batch['lq_nir'].shape == (2, 1, 32, 32)
    torch.manual_seed(0)
    model = build_model(_opt({'train': train_opt, 'val': _dataset(split, 'val', nir_scale=4)}))
    assert model.net_g.nir_scale == 4
    model.feed_data(batch)
    before = [p.clone() for p in model.net_g.parameters()]
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert set(log) == {'l_pix', 'l_cssc'} and all(torch.isfinite(torch.tensor(v)) for v in log.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    assert model.output.shape == batch['gt'].shape and model.output_nir.shape == batch['gt_nir'].shape
    model.test()
    assert model.output.shape == batch['gt'].shape
