"""The NIR-use measurements (cspsr_arch.benchmark.nir_use) on networks with hand-set weights: known answers."""
import math
from typing import NamedTuple

import pytest
import torch
import yaml
from torch import nn

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.archs.dmf import DMF
from cspsr_arch.benchmark import nir_use


def _tiny(**kwargs) -> CSPSR:
    torch.manual_seed(0)
    return CSPSR(num_feat=4, num_dmf=2, upscale=2, **{'cvm': 'none', 'norm': 'none', **kwargs}).eval()


class _Out(NamedTuple):
    sr: torch.Tensor


class _Linear(nn.Module):
    """sr = a * lq + b * nir (the NIR broadcast over the 3 channels)."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, lq, nir, disp=None):
        return _Out(self.a * lq + self.b * nir)


def test_input_gradient_share_of_a_linear_network_by_hand():
    # loss = mean((a + b)^2) over n*3*h*w with lq = nir = 1, gt = 0: dL/dlq = 2a(a+b)/N per element,
    # dL/dnir = 3 * 2b(a+b)/N (the NIR feeds 3 channels): the RMS ratio is 3b/a
    lq, nir = torch.ones(1, 3, 5, 6), torch.ones(1, 1, 5, 6)
    out = nir_use.input_gradient_share(_Linear(1.0, 0.5), lq, torch.zeros(1, 3, 5, 6), nir)
    n = 3 * 5 * 6
    assert out['grad_vis'] == pytest.approx(2 * 1.0 * 1.5 / n, rel=1e-6)
    assert out['nir_to_vis'] == pytest.approx(1.5, rel=1e-6)


@pytest.mark.parametrize('branches', ['dual', 'concat'])
def test_input_gradient_share_is_zero_exactly_when_the_nir_path_is_cut(branches):
    net = _tiny(branches=branches)
    lq, nir = torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8)
    gt = torch.rand(1, 3, 16, 16)
    assert nir_use.input_gradient_share(net, lq, gt, nir)['nir_to_vis'] > 1e-4
    with torch.no_grad():
        if branches == 'dual':
            net.branch_nir[0].weight.zero_()  # the NIR branch's first convolution
        else:
            net.branch_vis[0].weight[:, 3:].zero_()  # the NIR and mask input channels of the one branch
    assert nir_use.input_gradient_share(net, lq, gt, nir)['nir_to_vis'] == 0.0
    assert nir_use.diagnose(_tiny(branches='vis'), [{'lq': lq, 'lq_nir': nir, 'gt': gt}])['nir_to_vis'] == 0.0


def test_nir_parameters_are_the_nir_branch():
    names = {n for n, _ in _tiny().named_parameters() if nir_use.is_nir_parameter(n)}
    expected = {n for n, _ in _tiny().named_parameters()
                if n.startswith(('branch_nir.', 'head_nir.')) or '.dyconv.' in n or '.conv_nir.' in n}
    assert names == expected and any('.dyconv.predict' in n for n in names)
    assert not any(n.startswith(('branch_vis', 'head_vis')) or '.fusion.' in n or '.conv_vis.' in n for n in names)


def test_parameter_gradient_share_is_zero_when_the_vis_update_ignores_the_fusion():
    net = _tiny()
    lq, nir, gt = torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), torch.rand(1, 3, 16, 16)
    assert nir_use.parameter_gradient_share(net, lq, nir, gt)['nir_branch'] > 1e-6
    with torch.no_grad():
        for dmf in net.dmfs:  # F'_vis (the only way in for the NIR) no longer reaches the VIS output
            dmf.conv_vis.weight.zero_()
    share = nir_use.parameter_gradient_share(net, lq, nir, gt)
    assert share['nir_branch'] == 0.0 and share['rest_per_param'] > 0  # the NIR output's loss is not counted


def test_dmf_statistics_with_hand_set_gates_and_kernels():
    dmf = DMF(num_feat=4, kernel_size=3, norm='none').eval()
    with torch.no_grad():
        for conv in (dmf.dyconv.predict, dmf.fusion.spatial_vis, dmf.fusion.spatial_cat, dmf.fusion.channel):
            conv.weight.zero_()
            conv.bias.zero_()  # every gate sigmoid(0) = 0.5, every dynamic kernel uniform (1/9 per tap)
        dmf.conv_vis.weight.zero_()
        dmf.conv_vis.bias.fill_(0.3)
    feat_vis, feat_nir = torch.full((1, 4, 5, 5), 2.0), torch.ones(1, 4, 5, 5)
    stats = nir_use.dmf_statistics(dmf, feat_vis, feat_nir)
    for gate in ('w_s1', 'w_s2', 'w_c1', 'w_c2'):
        assert stats[f'{gate}_mean'] == pytest.approx(0.5) and stats[f'{gate}_std'] == pytest.approx(0.0, abs=1e-7)
    assert stats['kernel_centre'] == pytest.approx(1 / 9) and stats['kernel_entropy'] == pytest.approx(1.0)
    # uniform 3x3 filter of ones with zero padding on 5x5: 9 inner pixels 1, 12 edge pixels 6/9, 4 corners 4/9
    nir_mean = (9 + 12 * 6 / 9 + 4 * 4 / 9) / 25
    part_nir, part_vis = nir_mean * 0.5 * 0.5, 2.0 * 0.5 * 0.5 * 0.5
    assert stats['nir_share'] == pytest.approx(part_nir / (part_nir + part_vis), rel=1e-6)
    assert stats['vis_change'] == pytest.approx(0.3 / 2.0, rel=1e-6)  # conv_vis adds its bias to F_vis = 2


def test_dmf_statistics_centre_tap_of_the_initial_kernels():
    dmf = DMF(num_feat=4, kernel_size=3, norm='none').eval()
    with torch.no_grad():
        dmf.dyconv.predict.weight.zero_()  # the initial bias alone: centre 0.9, the other taps 0.0125
    stats = nir_use.dmf_statistics(dmf, torch.rand(1, 4, 6, 6), torch.rand(1, 4, 6, 6))
    entropy = -(0.9 * math.log(0.9) + 8 * 0.0125 * math.log(0.0125)) / math.log(9)
    assert stats['kernel_centre'] == pytest.approx(0.9, rel=1e-5)
    assert stats['kernel_entropy'] == pytest.approx(entropy, rel=1e-5)


def test_fusion_statistics_sees_each_module_inputs():
    net = _tiny()
    lq, nir = torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8)
    per_module = nir_use.fusion_statistics(net, lq, nir)
    assert len(per_module) == 2
    with torch.no_grad():  # the first module's inputs are the shallow branches' features
        first = nir_use.dmf_statistics(net.dmfs[0], net.branch_vis(lq),
                                       net.branch_nir(torch.cat([nir, torch.ones_like(nir)], 1)))
    assert per_module[0] == pytest.approx(first)
    assert per_module[0] != pytest.approx(per_module[1])


def test_diagnose_run_reads_every_checkpoint(tmp_path, toy_split):
    split, _ = toy_split
    net_opt = {'type': 'CSPSR', 'num_feat': 4, 'num_dmf': 2, 'upscale': 2, 'cvm': 'given', 'max_disp': 4,
               'norm': 'none'}
    run = tmp_path / 'experiments' / 'tiny_x2'
    (run / 'models').mkdir(parents=True)
    opt = {'name': 'tiny_x2', 'model_type': 'CSPSRModel', 'scale': 2, 'num_gpu': 0, 'network_g': net_opt}
    (run / 'tiny_x2.yml').write_text(yaml.safe_dump(opt))
    nets = {}
    for iteration in (1000, 500):
        torch.manual_seed(iteration)
        nets[iteration] = CSPSR(**{k: v for k, v in net_opt.items() if k != 'type'})
        torch.save({'params': nets[iteration].state_dict()}, run / 'models' / f'net_g_{iteration}.pth')
    torch.save({'params': nets[500].state_dict()}, run / 'models' / 'net_g_latest.pth')
    rows = nir_use.diagnose_run(run, split, scale=2, max_images=1)
    assert [r['iter'] for r in rows] == [500.0, 1000.0]
    from cspsr_arch.benchmark.evaluation import test_loader
    data = next(iter(test_loader(split, 2)))
    for row, iteration in zip(rows, (500, 1000)):
        assert row == pytest.approx({'iter': float(iteration), **nir_use.diagnose(nets[iteration].eval(), [data])})


def test_the_tool_prints_a_row_per_checkpoint_and_names_a_missing_run(tmp_path, toy_split, capsys):
    split, _ = toy_split
    run = tmp_path / 'tiny_x2'
    (run / 'models').mkdir(parents=True)
    net_opt = {'type': 'CSPSR', 'num_feat': 4, 'num_dmf': 1, 'upscale': 2, 'cvm': 'none', 'norm': 'none'}
    (run / 'tiny_x2.yml').write_text(yaml.safe_dump({'name': 'tiny_x2', 'model_type': 'CSPSRModel', 'scale': 2,
                                                     'num_gpu': 0, 'network_g': net_opt}))
    torch.save({'params': CSPSR(**{k: v for k, v in net_opt.items() if k != 'type'}).state_dict()},
               run / 'models' / 'net_g_7.pth')
    import json
    import subprocess
    import sys
    from pathlib import Path
    tool = Path(__file__).resolve().parents[2] / 'tools' / 'nir_diagnostics.py'
    done = subprocess.run([sys.executable, str(tool), str(run), '--split', str(split), '--scale', '2', '--json',
                           str(tmp_path / 'd.json')], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert '| iter | nir_to_vis |' in done.stdout and '\n| 7 |' in done.stdout
    assert [r['iter'] for r in json.loads((tmp_path / 'd.json').read_text())['tiny_x2']] == [7.0]
    assert nir_use.main([str(tmp_path / 'nowhere'), '--split', str(split)]) == 2
    assert 'experiment folder of a training run' in capsys.readouterr().err


def _rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


def test_cross_view_update_of_nafssr_is_linear_in_its_attention_scale():
    from cspsr_arch.archs.nafssr_arch import NAFSSR, SCAM
    torch.manual_seed(4)
    net = NAFSSR(upscale=2, width=4, num_blocks=1).eval()
    scam = next(m for m in net.modules() if isinstance(m, SCAM))
    lq, nir = torch.rand(1, 3, 6, 8), torch.rand(1, 1, 6, 8)
    assert nir_use.cross_view_update(net, lq, nir) == 0.0  # the scale starts at zero: nothing of the NIR enters
    with torch.no_grad():
        scam.gamma_l.fill_(0.5)
        half = nir_use.cross_view_update(net, lq, nir)
        scam.gamma_l.fill_(1.0)
        one = nir_use.cross_view_update(net, lq, nir)
    assert half > 1e-4 and one == pytest.approx(2 * half, rel=1e-5)
    stats = nir_use.diagnose(net, [{'lq': lq, 'lq_nir': nir, 'gt': torch.rand(1, 3, 12, 16)}])
    assert stats['cross_view_update'] == pytest.approx(one, rel=1e-5) and stats['nir_to_vis'] > 0


def test_cross_view_update_of_cspsr_against_the_features_it_is_added_to():
    lq, nir = torch.rand(1, 3, 6, 7), torch.rand(1, 1, 6, 7)
    torch.manual_seed(0)
    fused = CSPSR(num_feat=4, num_dmf=1, upscale=2, cvm='none', norm='none').eval()
    inputs = []
    fused.dmfs[0].register_forward_pre_hook(lambda _m, args: inputs.append(args))
    with torch.no_grad():
        update = nir_use.cross_view_update(fused, lq, nir)
        feat_vis, feat_nir = inputs[0]
        expected = _rms(fused.dmfs[0](feat_vis, feat_nir)[0] - feat_vis) / _rms(feat_vis)
    assert update == pytest.approx(expected, rel=1e-5)
    additive = _tiny(vis_path='additive')
    assert nir_use.cross_view_update(additive, lq, nir) == 0.0  # beta starts at zero
    with torch.no_grad():
        for dmf in additive.dmfs:
            dmf.beta_vis.fill_(1.0)
    assert nir_use.cross_view_update(additive, lq, nir) > 1e-4
    assert nir_use.cross_view_update(_tiny(branches='vis'), lq, nir) is None
