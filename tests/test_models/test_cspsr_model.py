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


def test_compiled_training_steps_save_plain_checkpoints(tmp_path, monkeypatch):
    import cspsr_arch.engine.compile as compile_mod
    compile_network = compile_mod.compile_network
    calls = []

    def dynamo_only(net, device=None, dynamic_size=True, log=print, backend='inductor'):
        calls.append(dynamic_size)  # dynamo's tracing with the eager backend: no C++ build, seconds
        return compile_network(net, device, dynamic_size, log, backend='eager')

    monkeypatch.setattr(compile_mod, 'compile_network', dynamo_only)
    opt = _opt()
    opt['train']['compile'] = True
    opt['path'] = {'models': str(tmp_path / 'models')}
    model = build_model(opt)
    assert calls == [False] and model.train_net is not model.net_g  # static shapes for fixed training patches
    assert isinstance(model.train_net, torch._dynamo.eval_frame.OptimizedModule)
    torch.manual_seed(0)
    model.feed_data(_batch(tmp_path))
    before = [p.clone() for p in model.net_g.parameters()]
    model.optimize_parameters(1)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))  # the shared weights moved
    (tmp_path / 'models').mkdir()
    model.save_network(model.net_g, 'net_g', 1)
    saved = torch.load(tmp_path / 'models' / 'net_g_1.pth', weights_only=True)['params']
    assert list(saved) == list(model.net_g.state_dict()) and not any('_orig_mod' in k for k in saved)
    torch._dynamo.reset()


def test_without_a_compiler_training_runs_eager(tmp_path, monkeypatch):
    import cspsr_arch.engine.compile as compile_mod
    monkeypatch.setattr(compile_mod.shutil, 'which', lambda name: None)
    opt = _opt()
    opt['train']['compile'] = True
    model = build_model(opt)
    assert model.train_net is model.net_g
