"""The prior-guided comparison networks (PASSR, NAFSSR, MASASR, CMSR) end to end: built from the option files, one
training step of ``CSPSRModel``, ``basicsr infer``, the HR-NIR gate, and PASSR's attention losses."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.models import build_model
from basicsr.utils.registry import ARCH_REGISTRY
from toy_data import make_toy_split

from cspsr_arch.cli import main
from cspsr_arch.engine.options import load_options
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.infer.vis_only import reads_nir

OPTIONS = Path(__file__).resolve().parents[2] / 'options'
TINY = {
    'PASSR': {'num_feat': 8},
    'NAFSSR': {'width': 8, 'num_blocks': 2},
    'MASASR': {'num_feat': 8, 'num_blocks_enc': [1, 1, 1], 'num_blocks_lr': [1, 1, 1], 'num_blocks_x1': 1,
               'num_blocks_up': [1, 1]},
    'CMSR': {'num_feat': 8, 'num_layers': 4, 'warp_window': 32},  # the toy patches' gt_size
}
"""Tiny sizes of each peer, merged over its option file's network."""
FILES = {'PASSR': 'train_PASSR_x4.yml', 'NAFSSR': 'train_NAFSSR_x4.yml', 'MASASR': 'train_MASASR_x4.yml',
         'CMSR': 'train_CMSR_x4.yml', 'CMSR_HRNIR': 'train_CMSR_HRNIR_x4.yml'}


@pytest.fixture(scope='module')
def split(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('peers') / 'train'
    make_toy_split(root, keys=('a', 'b'), size=64, scales=(4, ))
    return root


def _network(row: str) -> dict:
    source = load_options(str(OPTIONS / FILES[row]))['network_g']
    return {**source, **TINY['CMSR' if row == 'CMSR_HRNIR' else row]}


def _opt(row: str, split: Path, nir_scale: int = 1, train: dict = None) -> dict:
    dataset = {'name': 'toy', 'type': 'PairedCrossSpectralDataset', 'phase': 'train', 'scale': 4,
               'dataroot': str(split), 'gt_size': 32, 'use_vflip': True, 'nir_scale': nir_scale}
    return {'name': 'toy', 'model_type': 'CSPSRModel', 'scale': 4, 'num_gpu': 0, 'is_train': True, 'dist': False,
            'rank': 0, 'world_size': 1, 'network_g': _network(row), 'path': {}, 'datasets': {'train': dataset},
            'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                      'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
                      'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0}, **(train or {})}}


def _batch(split: Path, nir_scale: int) -> dict:
    from basicsr.utils.registry import DATASET_REGISTRY
    ds = DATASET_REGISTRY.get('PairedCrossSpectralDataset')(
        {'name': 'toy', 'phase': 'train', 'scale': 4, 'dataroot': str(split), 'gt_size': 32, 'nir_scale': nir_scale})
    items = [ds[0], ds[1]]
    return {k: torch.stack([i[k] for i in items]) for k in items[0] if torch.is_tensor(items[0][k])}


@pytest.mark.parametrize('row', list(FILES))
def test_the_option_files_build_the_paper_size_peers(row):
    opt = load_options(str(OPTIONS / FILES[row]))
    net_opt = dict(opt['network_g'])
    arch = net_opt.pop('type')
    assert reads_nir(arch) and opt['model_type'] == 'CSPSRModel' and 'cssc_opt' not in opt['train']
    with torch.device('meta'):  # paper sizes without allocating their weights
        net = ARCH_REGISTRY.get(arch)(**net_opt)
    # the paper's network; the guide-image networks also carry CSPSR's learned CVM in front, as the paper aligns
    # their NIR by cross-spectral stereo matching first
    params = sum(p.numel() for n, p in net.named_parameters() if not n.startswith('cvm_net.')) / 1e6
    assert params == pytest.approx({'PASSR': 1.42, 'NAFSSR': 1.56, 'MASASR': 4.03, 'CMSR': 0.24,
                                    'CMSR_HRNIR': 0.24}[row], rel=0.05)
    assert net.cvm == ('learned' if row in ('MASASR', 'CMSR', 'CMSR_HRNIR') else 'none')
    if net.cvm == 'learned':  # the pre-trained disparity network of the protocol, and its range
        assert opt['path']['pretrain_network_disp'].endswith('CrossSpectralStereo_x4_RGBNIRStereo/models/'
                                                             'net_g_latest.pth')
        assert net.cvm_net.max_disp == 24
    nir_scale = opt['network_g'].get('nir_scale', 1)
    assert all(d.get('nir_scale', 1) == nir_scale for d in opt['datasets'].values())


@pytest.mark.parametrize('row', list(FILES))
def test_one_training_step_and_a_test_pass(row, split):
    nir_scale = 4 if row == 'CMSR_HRNIR' else 1
    model = build_model(_opt(row, split, nir_scale))
    batch = _batch(split, nir_scale)
    assert batch['lq_nir'].shape[-1] == nir_scale * batch['lq'].shape[-1]
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert np.isfinite(model.log_dict['l_pix']) and set(model.log_dict) == {'l_pix'}
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    model.feed_data({k: v[:1] for k, v in batch.items()})
    model.test()
    assert model.output.shape == batch['gt'][:1].shape


def test_the_hr_nir_reaches_only_a_network_built_for_it(split):
    with pytest.raises(CSPSRInputError, match=r'datasets:train:nir_scale is 4, but network_g:nir_scale is 1'):
        build_model(_opt('CMSR', split, nir_scale=4))  # CMSR on the LR NIR given the HR NIR: refused
    with pytest.raises(CSPSRInputError, match=r'datasets:train:nir_scale is 1, but network_g:nir_scale is 4'):
        build_model(_opt('CMSR_HRNIR', split, nir_scale=1))
    for row in ('PASSR', 'NAFSSR'):  # stereo SR takes a second view of the LR size only
        net_opt = {k: v for k, v in _network(row).items() if k != 'type'}
        with pytest.raises(ValueError, match='nir_scale'):
            ARCH_REGISTRY.get(row)(**net_opt, nir_scale=4)


def test_passr_trains_with_its_attention_losses_and_nothing_else_takes_them(split):
    attention = {'attention_opt': {'type': 'ParallaxAttentionLoss', 'loss_weight': 0.005}}
    model = build_model(_opt('PASSR', split, train=attention))
    model.feed_data(_batch(split, 1))
    model.optimize_parameters(1)
    assert model.log_dict['l_attention'] > 0
    with pytest.raises(CSPSRInputError, match='attention_opt needs a network that keeps its parallax attention'):
        build_model(_opt('NAFSSR', split, train=attention))


@pytest.mark.parametrize('row', ['NAFSSR', 'CMSR_HRNIR'])
def test_basicsr_infer_runs_a_peer(row, split, tmp_path, capsys):
    nir_scale = 4 if row == 'CMSR_HRNIR' else 1
    torch.manual_seed(0)
    net_opt = _network(row)
    arch = net_opt.pop('type')
    net = ARCH_REGISTRY.get(arch)(**net_opt).eval()
    torch.save({'params': net.state_dict()}, tmp_path / 'net.pth')
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'scale': 4, 'network_g': {'type': arch, **net_opt}}))
    lr = split / 'LR_bicubic' / 'X4'
    nir = split / 'HR' / 'NIR' / 'a.png' if nir_scale == 4 else lr / 'NIR' / 'a.png'
    args = ['infer', '-opt', str(tmp_path / 'opt.yml'), '--model', str(tmp_path / 'net.pth'), '--vis',
            str(lr / 'VIS' / 'a.png'), '--quiet']
    assert main(args + ['--nir', str(nir), '--out', str(tmp_path / 'sr.png')]) == 0
    assert f'({arch} x4, untiled' in capsys.readouterr().out
    vis = cv2.cvtColor(cv2.imread(str(lr / 'VIS' / 'a.png')), cv2.COLOR_BGR2RGB)
    nir_img = cv2.imread(str(nir), cv2.IMREAD_GRAYSCALE)
    with torch.no_grad():
        direct = net(torch.from_numpy(vis.transpose(2, 0, 1) / 255.0).float()[None],
                     torch.from_numpy(nir_img / 255.0).float()[None, None]).sr
    expected = cv2.cvtColor((direct[0].clamp(0, 1).numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8),
                            cv2.COLOR_RGB2BGR)
    assert np.abs(cv2.imread(str(tmp_path / 'sr.png')).astype(int) - expected).max() <= 1
    assert main(args + ['--out', str(tmp_path / 'none.png')]) == 2  # a NIR-guided network needs --nir
    assert 'pass --nir' in capsys.readouterr().err
    if nir_scale == 4:  # the LR NIR given to an HR-NIR network: named, with the size it needs
        assert main(args + ['--nir', str(lr / 'NIR' / 'a.png'), '--out', str(tmp_path / 'x.png')]) == 2
        assert 'nir_scale (4) x the VIS size' in capsys.readouterr().err


def test_the_benchmark_plans_the_peers_near_the_cpu_networks_size(tmp_path):
    from cspsr_arch.benchmark.presets import CPU, PEER_MODELS
    from cspsr_arch.benchmark.runs import plan
    from cspsr_arch.engine.options import check_options
    make_toy_split(tmp_path / 'train', scales=(4, ))
    runs = plan(OPTIONS, tmp_path / 'train', CPU, list(PEER_MODELS), ablations=False)
    for row in PEER_MODELS:
        opt = runs.table['bicubic'][4][row][0].opt
        check_options(dict(opt, is_train=True))  # the strict checker: every key one the code reads
        net_opt = dict(opt['network_g'])
        net = ARCH_REGISTRY.get(net_opt.pop('type'))(**net_opt)
        assert 0.19e6 < sum(p.numel() for p in net.parameters()) < 0.22e6, row  # a CVM in front counted in
        assert opt['datasets']['train'].get('nir_scale', 1) == (4 if row == 'CMSR_HRNIR' else 1)
        if row.startswith('CMSR'):  # its alignment learnt on, and applied to, windows of the training patch's size
            assert opt['network_g']['warp_window'] == opt['datasets']['train']['gt_size'] == CPU.gt_size != 120
    # the guide-image networks align their NIR by the pre-trained CVM (as CSPSR); the stereo SR networks take the pair
    stereo = [r for r in runs.runs if r.model == 'stereo']
    assert [r.name for r in stereo] == ['stereo_x4']
    rows = runs.table['bicubic'][4]
    assert {row for row in PEER_MODELS if rows[row][0].stereo == 'stereo_x4'} == {'MASASR', 'CMSR', 'CMSR_HRNIR'}


def test_the_cmsr_option_files_align_per_window_of_their_training_patch():
    from cspsr_arch.engine.options import load_options
    for name in ('train_CMSR_x4.yml', 'train_CMSR_HRNIR_x4.yml'):
        opt = load_options(str(OPTIONS / name))
        assert opt['network_g']['warp_window'] == opt['datasets']['train']['gt_size'], name


def test_a_cmsr_window_other_than_the_training_patch_is_refused(split):
    from basicsr.models import build_model
    opt = _opt('CMSR', split)
    opt['network_g']['warp_window'] = 64
    with pytest.raises(CSPSRInputError, match=r'warp_window is 64, but datasets:train:gt_size is 32.*warp_window: 32'):
        build_model(opt)


def test_the_validation_after_training_is_labelled_with_the_last_iteration(split, monkeypatch):
    from basicsr.models.sr_model import SRModel
    seen = []
    monkeypatch.setattr(SRModel, 'validation', lambda self, loader, it, tb, save=False: seen.append(it))
    opt = _opt('CMSR', split)
    opt['train']['total_iter'] = 200
    model = build_model(opt)
    for it in (100, 200, 201):  # BasicSR validates once more after the loop, one past the total
        model.validation(None, it, None)
    assert seen == [100, 200, 200]
