"""Baselines: the HAT wrapper (spandrel), the baseline options under CSPSR's data and protocol, VIS-only training
with our data set."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils.registry import ARCH_REGISTRY
from toy_data import dataset_opt

from cspsr_arch.archs.hat_arch import HAT, pad_to_window
from cspsr_arch.engine.options import check_options, load_options

ROOT = Path(__file__).resolve().parents[2]
BASELINES = ('EDSR', 'RCAN', 'HAT', 'ConcatNIR')
CSPSR_ONLY = {'train': ('cssc_opt', 'freeze_disp'), 'path': ('pretrain_network_disp', )}
PAPER_PARAMS_M = {'EDSR': 1.518, 'RCAN': 15.59, 'HAT': 20.77}  # EDSR baseline, RCAN and HAT of their papers, x4
TINY_HAT = dict(embed_dim=12, depths=(2, ), num_heads=(2, ), window_size=8, squeeze_factor=4, num_feat=8)


def test_hat_is_registered_and_pads_any_size_to_its_window():
    assert ARCH_REGISTRY.get('HAT') is HAT
    torch.manual_seed(0)
    net = HAT(**TINY_HAT, drop_path_rate=0.).eval()
    with torch.no_grad():
        for h, w in ((16, 16), (13, 11), (3, 5)):  # multiple, reflect-padded, replicate-padded (too small to reflect)
            x = torch.rand(2, 3, h, w)
            out = net(x)
            assert out.shape == (2, 3, 4 * h, 4 * w) and torch.isfinite(out).all()
        x = torch.rand(1, 3, 16, 24)
        assert torch.equal(net(x), net.net(x))  # a window multiple goes through spandrel's HAT untouched
        x = torch.rand(1, 3, 13, 11)
        padded = F.pad(x, (0, 5, 0, 3), mode='reflect')
        assert torch.allclose(net(x), net.net(padded)[..., :52, :44], atol=1e-6)
    assert pad_to_window(torch.rand(1, 3, 3, 5), 8).shape[-2:] == (8, 8)


def test_hat_trains_and_rejects_bad_configurations():
    net = HAT(**TINY_HAT, upscale=2)
    out = net(torch.rand(2, 3, 10, 12))
    out.mean().backward()
    assert out.shape == (2, 3, 20, 24)
    assert all(p.grad is not None for n, p in net.named_parameters() if p.requires_grad), 'every weight trains'
    with pytest.raises(ValueError, match='must divide embed_dim'):
        HAT(embed_dim=12, num_heads=(5, ), depths=(1, ))
    with pytest.raises(ValueError, match='lower compress_ratio or squeeze_factor'):
        HAT(embed_dim=12, num_heads=(2, ), depths=(1, ), compress_ratio=3, squeeze_factor=30)


@pytest.mark.parametrize('scale', [2, 4])
def test_baselines_train_under_cspsr_data_and_protocol(scale):
    """A fair comparison: the resolved options of each baseline differ from CSPSR's only in the network."""
    cspsr = load_options(str(ROOT / 'options' / f'train_CSPSR_x{scale}.yml'))
    for model in BASELINES:
        opt = load_options(str(ROOT / 'options' / f'train_{model}_x{scale}.yml'))
        assert 'base' not in opt and opt['name'] == f'{model}_x{scale}_RGBNIRStereo'
        for key in ('scale', 'datasets', 'val', 'logger', 'manual_seed'):
            assert opt[key] == cspsr[key], (model, key)
        for section, own in CSPSR_ONLY.items():
            assert opt[section] == {k: v for k, v in cspsr[section].items() if k not in own}, (model, section)
        assert opt['datasets']['train']['use_hflip'] is False
        assert opt['network_g']['upscale'] == scale
        assert opt['model_type'] == ('CSPSRModel' if model == 'ConcatNIR' else 'SRModel')
        check_options(dict(opt, is_train=True, datasets={}))  # strict keys: network, train, val, logger


def test_baseline_networks_are_the_papers_and_run():
    from cspsr_arch.benchmark import profile as profile_model
    for model in (*BASELINES, 'CSPSR'):
        net, cross_spectral = profile_model.build(profile_model.network_options(model, 4))
        params = sum(p.numel() for p in net.parameters()) / 1e6
        if model in PAPER_PARAMS_M:
            assert params == pytest.approx(PAPER_PARAMS_M[model], abs=0.01), model
        assert cross_spectral == (model in ('ConcatNIR', 'CSPSR'))
        lq = torch.rand(1, 3, 12, 10)
        with torch.no_grad():
            out = net.eval()(lq, torch.rand(1, 1, 12, 10)).sr if cross_spectral else net.eval()(lq)
        assert out.shape == (1, 3, 48, 40), model
    concat = profile_model.build(profile_model.network_options('ConcatNIR', 4))[0]
    assert concat.branches == 'concat' and concat.cvm == 'none' and concat.branch_vis[0].in_channels == 5


def test_vis_only_baseline_trains_with_the_cross_spectral_dataset(toy_split):
    split, _ = toy_split
    train = dataset_opt(split, 4, phase='train', gt_size=32, use_hflip=False, use_vflip=True)
    opt = {
        'name': 'edsr_toy', 'model_type': 'SRModel', 'scale': 4, 'num_gpu': 0, 'is_train': True, 'dist': False,
        'rank': 0, 'world_size': 1, 'datasets': {},
        'network_g': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 4},
        'path': {'pretrain_network_g': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [9],
                                                                           'gamma': 0.5},
                  'total_iter': 1, 'warmup_iter': -1, 'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0}},
    }
    model = build_model(opt)
    batch = {k: (v[None] if torch.is_tensor(v) else [v]) for k, v in build_dataset(train)[0].items()}
    assert batch['lq_nir'].shape == (1, 1, 8, 8)  # the NIR is in the batch; SRModel feeds lq only
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert torch.isfinite(torch.as_tensor(model.log_dict['l_pix']))
    model.test()
    first = model.output.clone()
    model.feed_data(dict(batch, lq_nir=torch.zeros_like(batch['lq_nir'])))
    model.test()
    assert model.output.shape == (1, 3, 32, 32) and torch.equal(model.output, first)  # VIS only: NIR ignored
