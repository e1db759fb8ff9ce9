"""tools/profile_model.py (``cspsr_arch.benchmark.profile``): figures for CSPSR and EDSR on a small frame."""
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_profile_reports_finite_figures(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'profile_model.py'), '--hr', '66x50', '--runs', '2',
                          '--json', str(tmp_path / 'p.json')], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / 'p.json').read_text())
    assert report['hr'] == '64x48' and report['lr'] == '16x12'
    models = report['models']
    assert set(models) == {'CSPSR', 'EDSR'}
    for figures in models.values():
        assert set(figures) == {'params_M', 'gflops', 'latency_s', 'peak_mem_MB'}
        assert all(math.isfinite(v) and v >= 0 for v in figures.values())
        assert figures['gflops'] > 0 and figures['latency_s'] > 0
    assert abs(models['EDSR']['params_M'] - 1.518) < 0.01  # BasicSR's EDSR baseline, x4
    # EDSR: 2 FLOPs per multiply-add, body of 33 64->64 3x3 convs on 16x12 pixels dominates
    assert models['EDSR']['gflops'] > 2 * 33 * 64 * 64 * 9 * 16 * 12 / 1e9
    assert 'CSPSR' in out.stdout and 'GFLOPs' in out.stdout


def test_compile_rows_are_left_out_with_a_message_without_a_compiler(tmp_path, monkeypatch, capsys):
    import cspsr_arch.engine.compile as compile_mod
    from cspsr_arch.benchmark.profile import run_profile
    monkeypatch.setattr(compile_mod.shutil, 'which', lambda name: None)
    run_profile(['CSPSR', 'EDSR'], '34x26', runs=1, also_compiled=True, json_path=str(tmp_path / 'p.json'))
    out = capsys.readouterr().out
    assert 'no C++ compiler found' in out and '(compiled)' not in out
    report = json.loads((tmp_path / 'p.json').read_text())
    assert 'compiled' not in report and set(report['models']) == {'CSPSR', 'EDSR'}


def test_interleaved_latency_times_the_networks_in_rounds(monkeypatch):
    """A fake clock: each call advances it by a known amount, so the medians and the call order are exact."""
    import torch

    from cspsr_arch.benchmark import profile
    clock, calls = [0.0], []

    def network(name, costs):
        def call(x):
            calls.append(name)
            clock[0] += costs.pop(0)
        return call

    monkeypatch.setattr(profile.time, 'perf_counter', lambda: clock[0])
    # one warm-up call each, then 3 rounds; the slow round of 'a' (9 s) is not its median
    entries = {'a': (network('a', [100.0, 1.0, 9.0, 2.0]), (None, )), 'b': (network('b', [100.0, 4.0, 5.0, 6.0]), (None, ))}
    latency = profile.interleaved_latency(entries, runs=3, device=torch.device('cpu'))
    assert latency == {'a': 2.0, 'b': 5.0}
    assert calls == ['a', 'b'] * 4  # warm-up round, then a, b alternate: both see the same minutes


def test_half_rows_time_the_autocast_network_and_measure_its_difference(tmp_path, monkeypatch, capsys):
    """bf16 is emulated on a CPU without bf16 instructions (slow, but it runs): the rows are made all the same."""
    import torch

    from cspsr_arch.benchmark.profile import build, half_difference, inputs, network_options, run_profile
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: True)
    report = run_profile(['CSPSR', 'EDSR'], '34x26', runs=1, json_path=str(tmp_path / 'p.json'), half=True)
    out = capsys.readouterr().out
    assert 'CSPSR (bfloat16)' in out and 'CSPSR / EDSR latency in bfloat16' in out
    assert set(report['half']) == {'CSPSR', 'EDSR'} and report['half']['EDSR']['dtype'] == 'bfloat16'
    # the difference recorded is the one of the EDSR under autocast, computed here by hand
    torch.manual_seed(0)
    net, _ = build(network_options('EDSR', 4))
    args = inputs(False, (6, 8), torch.device('cpu'))
    with torch.no_grad():
        full = net.eval()(*args)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            half = net(*args).float()
    expected = float((half - full).abs().mean())
    assert expected > 0 and half_difference(net, args, torch.bfloat16, torch.device('cpu')) == expected


def test_half_is_refused_where_the_cpu_would_emulate_it(tmp_path):
    import torch
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        import pytest
        pytest.skip('this CPU has bf16 instructions')
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'profile_model.py'), '--hr', '34x26', '--runs', '1',
                          '--half'], capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and out.stderr.startswith('profile_model.py: --half: this CPU has no bf16'), out.stderr
    assert 'Traceback' not in out.stderr


def test_the_cost_table_shows_half_precision_or_says_why_not():
    from cspsr_arch.benchmark.report import _profile_table
    figures = {'params_M': 0.2, 'gflops': 1.0, 'latency_cpu_s': 0.1, 'peak_mem_MB': 50.0}
    base = {'frame': '580x428', 'cpu_threads': 1, 'runs': 2, 'memory': 'RSS'}
    none = _profile_table({'profile': {**base, 'scales': {'x4': {'EDSR': {**figures, 'latency_cpu_half_s': None}}}}})
    assert any(line.startswith('CPU latency in half precision: not measured') for line in none)
    assert not any('bf16 (s)' in line for line in none)
    some = _profile_table({'profile': {**base, 'scales': {'x4': {'EDSR': {**figures, 'latency_cpu_half_s': 0.04}}}}})
    assert '| model | params (M) | GFLOPs | CPU latency (s) | CPU bf16 (s) | peak memory (MB) |' in some
    assert '| EDSR | 0.200 | 1.0 | 0.100 | 0.040 | 50 |' in some


def test_every_nir_guided_network_is_profiled_with_its_nir_and_the_others_without():
    """The benchmark's cost rows of the comparison networks: each called as it takes its inputs."""
    import torch

    from cspsr_arch.benchmark.profile import profile
    tiny = {'ENLCNNIR': {'num_feat': 8, 'num_block': 2, 'attn_every': 2}, 'PASSR': {'num_feat': 8},
            'CMSR': {'num_feat': 8, 'num_layers': 3, 'nir_scale': 4}, 'ENLCN': {'num_feat': 8, 'num_block': 2},
            'SMSR': {'num_feat': 8, 'num_block': 1, 'squeeze_factor': 4}}
    for arch, kw in tiny.items():
        result = profile({'type': arch, 'upscale': 4, **kw}, (8, 12), 1, torch.device('cpu'))
        assert result['gflops'] > 0 and result['latency_s'] > 0, arch
