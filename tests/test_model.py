"""CSPSRModel in-process: one optimisation step on CPU, EMA with BatchNorm buffers, device handling."""
import torch
from basicsr.models import build_model
from basicsr.utils.registry import DATASET_REGISTRY
from toy_data import dataset_opt, make_toy_split


def _opt(ema_decay=0.0):
    return {
        'name': 'toy', 'model_type': 'CSPSRModel', 'scale': 2, 'num_gpu': 0, 'is_train': True, 'dist': False,
        'rank': 0, 'world_size': 1,
        'network_g': {'type': 'CSPSR', 'num_feat': 8, 'num_dmf': 2, 'upscale': 2},
        'path': {},
        'train': {
            'ema_decay': ema_decay,
            'optim_g': {'type': 'Adam', 'lr': 1e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
            'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0},
            'cssc_opt': {'type': 'CrossSpectralSpatialConsistencyLoss', 'loss_weight': 0.1},
        },
    }


def _batch(tmp_path):
    split = tmp_path / 'train'
    make_toy_split(split, scales=(2, ))
    ds = DATASET_REGISTRY.get('PairedCrossSpectralDataset')(dataset_opt(split, 2, phase='train', gt_size=32))
    items = [ds[0], ds[1]]
    return {k: torch.stack([i[k] for i in items]) for k in items[0] if torch.is_tensor(items[0][k])}


def test_one_step_updates_weights_and_logs_finite_losses(tmp_path):
    model = build_model(_opt())
    assert model.device.type == 'cpu'
    batch = _batch(tmp_path)
    model.feed_data(batch)
    before = [p.clone() for p in model.net_g.parameters()]
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert set(log) == {'l_pix', 'l_cssc'} and all(torch.isfinite(torch.tensor(v)) for v in log.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    assert model.output.shape == batch['gt'].shape and model.output_nir.shape == batch['gt_nir'].shape
    model.test()
    assert model.output.shape == batch['gt'].shape


def test_ema_copies_batchnorm_statistics(tmp_path):
    model = build_model(_opt(ema_decay=0.9))
    model.feed_data(_batch(tmp_path))
    for it in range(3):
        model.optimize_parameters(it + 1)
    net = dict(model.net_g.named_buffers())
    ema = dict(model.net_g_ema.named_buffers())
    assert any('running_mean' in name for name in net)
    for name, buf in net.items():
        assert torch.equal(buf, ema[name]), name
