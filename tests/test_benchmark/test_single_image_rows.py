"""The further single-image rows of the benchmark (SMSR, NLSN, ENLCN and ENLCN w/ NIR): planned at the cpu
preset's size with strict options, the NIR row trained as a NIR-guided network, their sizes settable by --network."""
from pathlib import Path

import pytest
from basicsr.utils.registry import ARCH_REGISTRY
from toy_data import make_toy_split

from cspsr_arch.errors import CSPSRInputError

OPTIONS = Path(__file__).resolve().parents[2] / 'options'


def test_the_benchmark_plans_them_near_the_cpu_networks_size(tmp_path):
    from cspsr_arch.benchmark.presets import CPU, SINGLE_IMAGE_MODELS
    from cspsr_arch.benchmark.runs import plan
    from cspsr_arch.engine.options import check_options
    make_toy_split(tmp_path / 'train', scales=(4, ))
    runs = plan(OPTIONS, tmp_path / 'train', CPU, list(SINGLE_IMAGE_MODELS), ablations=False)
    sizes = {}
    for row in SINGLE_IMAGE_MODELS:
        opt = runs.table['bicubic'][4][row][0].opt
        check_options(dict(opt, is_train=True))  # every key one the code reads
        net_opt = dict(opt['network_g'])
        net = ARCH_REGISTRY.get(net_opt.pop('type'))(**net_opt)
        sizes[row] = sum(p.numel() for p in net.parameters())
        assert 0.18e6 < sizes[row] < 0.26e6, (row, sizes[row])
        assert opt['model_type'] == ('CSPSRModel' if row == 'ENLCN_NIR' else 'SRModel'), row
    assert sizes['ENLCN_NIR'] - sizes['ENLCN'] == 9 * 32  # the same network, one more input channel
    assert runs.table['bicubic'][4]['ENLCN_NIR'][0].opt['network_g']['type'] == 'ENLCNNIR'


def test_their_sizes_are_set_by_network_items_and_the_nir_row_follows_enlcn():
    from cspsr_arch.benchmark.presets import CPU, with_networks
    assert with_networks(CPU, ['NLSN.num_block=4']).networks['NLSN']['num_block'] == 4
    with pytest.raises(CSPSRInputError, match='ENLCN_NIR those of ENLCN'):
        with_networks(CPU, ['ENLCN_NIR.num_feat=8'])
    with pytest.raises(CSPSRInputError, match='CMSR_HRNIR those of CMSR'):  # would be ignored: it takes CMSR's sizes
        with_networks(CPU, ['CMSR_HRNIR.num_feat=8'])


def test_the_nir_row_counts_as_nir_guided_and_the_others_as_vis_only():
    from cspsr_arch.benchmark.results import NIR_MODELS, VIS_ONLY
    assert 'ENLCN_NIR' in NIR_MODELS and not {'SMSR', 'NLSN', 'ENLCN'} & set(NIR_MODELS)
    assert {'SMSR', 'NLSN', 'ENLCN'} <= set(VIS_ONLY)


TINY = {'SMSR': {'type': 'SMSR', 'num_feat': 8, 'num_block': 1, 'squeeze_factor': 4},
        'NLSN': {'type': 'NLSN', 'num_feat': 8, 'num_block': 2},
        'ENLCN': {'type': 'ENLCN', 'num_feat': 8, 'num_block': 2, 'attn_every': 1},
        'ENLCNNIR': {'type': 'ENLCNNIR', 'num_feat': 8, 'num_block': 2, 'attn_every': 1}}


@pytest.mark.parametrize('arch', sorted(TINY))
def test_basicsr_infer_runs_them(arch, tmp_path, capsys):
    """The written image is the network's output on the image; the VIS-only ones need no --nir, ENLCNNIR does."""
    import cv2
    import numpy as np
    import torch
    import yaml

    from cspsr_arch.cli import main
    torch.manual_seed(0)
    net_opt = dict(TINY[arch], upscale=4)
    net = ARCH_REGISTRY.get(net_opt.pop('type'))(**net_opt).eval()
    torch.save({'params': net.state_dict()}, tmp_path / 'net.pth')
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'scale': 4, 'network_g': {'type': arch, **net_opt}}))
    rng = np.random.default_rng(0)
    vis, nir = rng.integers(0, 256, (13, 19, 3), np.uint8), rng.integers(0, 256, (13, 19), np.uint8)
    cv2.imwrite(str(tmp_path / 'vis.png'), vis)
    cv2.imwrite(str(tmp_path / 'nir.png'), nir)
    args = ['infer', '-opt', str(tmp_path / 'opt.yml'), '--model', str(tmp_path / 'net.pth'), '--vis',
            str(tmp_path / 'vis.png'), '--out', str(tmp_path / 'sr.png'), '--quiet']
    guided = arch == 'ENLCNNIR'
    if guided:
        assert main(args) == 2 and 'pass --nir' in capsys.readouterr().err
        args += ['--nir', str(tmp_path / 'nir.png')]
    assert main(args) == 0
    assert f'({arch} x4, untiled' in capsys.readouterr().out
    lq = torch.from_numpy(vis[:, :, ::-1].transpose(2, 0, 1) / 255.0).float()[None]
    with torch.no_grad():
        out = net(lq, torch.from_numpy(nir / 255.0).float()[None, None]).sr if guided else net(lq)
    expected = (out[0].clamp(0, 1).numpy().transpose(1, 2, 0)[:, :, ::-1] * 255).round()
    assert np.abs(cv2.imread(str(tmp_path / 'sr.png')).astype(float) - expected).max() <= 1
