"""tools/gpu_check.py on the CPU: exit status, table and JSON, the comparison helper, log parsing of a real tiny
``basicsr train`` and its resume, inference rows run on the CPU, and the tool itself without CUDA (exit 3)."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cspsr_arch.gpu_check import checks, inference, training
from cspsr_arch.gpu_check.report import (EXIT_FAIL, EXIT_INCOMPLETE, EXIT_NO_CUDA, EXIT_PASS, FAIL, NO_CUDA, PASS,
                                         SKIPPED, Row, exit_status, format_table, load_rows, report_dict, skipped,
                                         write_json)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One torch/OpenMP thread here and in the subprocesses: the tiny networks run in milliseconds per step with
    one, and OpenMP's threads wait for each other for seconds on a shared, busy 2-core machine."""
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

# Lines of a real `basicsr train --auto_resume` log (the tiny CPU run of this file, 2026-12-05, its iteration numbers
# changed to those of a resume at 150), and a line at iteration 1,000 as BasicSR formats it, with a thousands separator.
LOG = """2026-12-05 00:38:18,831 INFO: Model [CSPSRModel] is created.
2026-12-05 00:51:02,120 INFO: Resuming training from epoch: 2, iter: 150.
2026-12-05 00:51:02,131 INFO: Start training from epoch: 2, iter: 150
2026-12-05 00:38:23,337 INFO: [gpu_c..][epoch:  0, iter:     160/200, lr:(1.000e-03,)] [eta: 0:00:13, 1.4 it/s, \
time (data): 2.253 (0.016)] l_pix: 1.0813e-02 l_cssc: 9.1625e-03 
2026-12-05 00:38:27,806 INFO: [gpu_c..][epoch:  0, iter:     170/200, lr:(1.000e-03,)] [eta: 0:00:00, 0.8 it/s, \
time (data): 2.243 (0.013)] l_pix: 8.8476e-03 l_cssc: 7.9326e-03 
2026-12-05 00:38:27,806 INFO: [gpu_c..][epoch:  3, iter:   1,000/2,000, lr:(1.000e-04,)] [eta: 0:01:00, \
time (data): 0.100 (0.001)] l_pix: 5.0000e-03 l_cssc: 1.0000e-03 
"""


def _rows():
    return [Row('cpu_ref:warp', PASS, {'max_abs_diff': 0.0}, gpu=False),
            Row('cuda_vs_cpu:warp', PASS, {'fwd_max_rel_diff': 2.5e-7, 'worst': 'out:warped'}, {'forward': 1e-4}, 1.5),
            Row('timing:EDSR:fp32', PASS, {'train_it_s': 12.5, 'loss': float('nan')}, seconds=3.0)]


def test_exit_status():
    rows = _rows()
    assert exit_status(rows, cuda=True) == EXIT_PASS == 0
    failed = rows + [Row('train_cli:resume', FAIL, reason='no 10.state')]
    assert exit_status(failed, cuda=True) == EXIT_FAIL == 1
    assert exit_status(failed, cuda=False) == EXIT_FAIL
    cpu_only = [Row('cpu_ref:warp', PASS, gpu=False), skipped('cuda_vs_cpu:warp', NO_CUDA)]
    assert exit_status(cpu_only, cuda=False) == EXIT_NO_CUDA == 3  # every CPU part passed: still not 0
    assert exit_status([Row('cpu_ref:warp', PASS, gpu=False)], cuda=False) == EXIT_NO_CUDA
    assert exit_status(rows + [skipped('timing:CSPSR:fp32', 'time budget')], cuda=True) == EXIT_INCOMPLETE == 4
    assert exit_status([], cuda=True) == EXIT_INCOMPLETE
    with pytest.raises(ValueError):
        Row('x', 'OK')


def test_table_and_json(tmp_path):
    rows = _rows() + [skipped('infer:cspsr_tiled', NO_CUDA)]
    table = format_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert table[3].split()[:3] == ['cuda_vs_cpu:warp', 'PASS', '1.5']
    assert 'fwd_max_rel_diff=2.5e-07' in table[3] and 'worst=out:warped' in table[3]
    assert table[5].split()[:2] == ['infer:cspsr_tiled', 'SKIPPED'] and '(no CUDA)' in table[5]
    report = report_dict(rows, cuda=False, machine={'torch': torch.__version__, 'gpu': None}, settings={'tiny': True},
                         seconds=12.34)
    write_json(tmp_path / 'sub' / 'r.json', report)
    data = json.loads((tmp_path / 'sub' / 'r.json').read_text())
    assert data['exit_code'] == 3 and data['overall'].startswith('NO CUDA') and data['seconds'] == 12.3
    assert data['machine'] == {'torch': torch.__version__, 'gpu': None}
    assert [r['name'] for r in data['rows']] == [r.name for r in rows]
    assert data['rows'][1]['tolerance'] == {'forward': 1e-4} and data['rows'][1]['seconds'] == 1.5
    assert data['rows'][2]['numbers']['loss'] == 'nan'  # non-finite numbers kept readable as strings
    assert data['rows'][3]['status'] == SKIPPED and data['rows'][3]['reason'] == NO_CUDA
    assert [r.status for r in load_rows(tmp_path / 'sub' / 'r.json')] == [PASS, PASS, PASS, SKIPPED]


def test_compare_reports_the_largest_difference():
    ref = {'out:a': torch.tensor([1.0, -2.0, 4.0]), 'out:b': torch.zeros(2)}
    test = {'out:a': torch.tensor([1.0, -2.0, 4.004]), 'out:b': torch.zeros(2)}
    result = checks.compare(ref, test, tol=2e-3)
    assert result['max_abs_diff'] == pytest.approx(0.004, rel=1e-4)
    assert result['max_rel_diff'] == pytest.approx(0.001, rel=1e-4)  # 0.004 / max |a| = 4
    assert result['worst'] == 'out:a' and result['passed'] and result['tensors'] == 2
    assert not checks.compare(ref, test, tol=5e-4)['passed']
    # a tensor of tiny scale is measured against FLOOR times the overall scale, not its own
    tiny = {'out:a': ref['out:a'], 'out:b': torch.tensor([1e-9, 0.0])}
    result = checks.compare(tiny, {'out:a': ref['out:a'], 'out:b': torch.tensor([2e-9, 0.0])}, tol=1e-4)
    assert result['max_rel_diff'] == pytest.approx(1e-9 / (checks.FLOOR * 4), rel=1e-4) and result['passed']
    for broken in ({'out:a': torch.tensor([1.0, float('nan'), 4.0]), 'out:b': torch.zeros(2)},
                   {'out:a': ref['out:a']}, {'out:a': ref['out:a'], 'out:b': torch.zeros(3)}):
        result = checks.compare(ref, broken, tol=1.0)
        assert not result['passed'] and math.isinf(result['max_rel_diff'])


def test_cpu_reference_is_deterministic_and_a_wrong_warp_is_caught(monkeypatch):
    case = checks.make_case('warp', checks.TINY_SIZES)
    first, second = checks.run_case(case, torch.device('cpu')), checks.run_case(case, torch.device('cpu'))
    assert set(first) == {'out:warped', 'out:valid', 'grad:input:img', 'grad:input:disp'}
    same = checks.compare_both(first, second, {'forward': 0.0, 'backward': 0.0})
    assert same['forward']['passed'] and same['backward']['passed']
    from cspsr_arch.archs import warp
    monkeypatch.setattr(warp, 'warp_to_left', lambda img, disp: warp.shift_horizontally(img, disp))  # sign flipped
    broken = checks.run_case(case, torch.device('cpu'))
    result = checks.compare_both(first, broken)
    assert not result['forward']['passed'] and result['forward']['max_rel_diff'] > 0.1


def test_log_parsing_on_a_recorded_log():
    assert training.parse_resume(LOG) == (2, 150)
    assert training.parse_resume('Start training from epoch: 0, iter: 0') is None
    assert training.parse_losses(LOG) == [(160, 1.0813e-02), (170, 8.8476e-03), (1000, 5.0e-03)]
    assert training.parse_losses(LOG, 'l_cssc')[0] == (160, 9.1625e-03)
    falling = training.loss_falls([(i, 1.0 / i) for i in range(1, 9)])
    assert falling['passed'] and falling['values'] == 8
    assert falling['first_mean'] == pytest.approx(0.75) and falling['last_mean'] == pytest.approx((1 / 7 + 1 / 8) / 2)
    assert not training.loss_falls([(i, float(i)) for i in range(1, 9)])['passed']
    assert not training.loss_falls([(i, 1.0) for i in range(1, 9)])['passed']  # flat is not falling
    assert not training.loss_falls([(1, 2.0), (2, 1.0), (3, float('nan')), (4, 0.5)])['passed']
    assert not training.loss_falls([(1, 2.0), (2, 1.0)])['passed']  # too few values to tell


@pytest.mark.slow
def test_real_tiny_training_and_resume(tmp_path):
    rows = training.training_rows(tmp_path, training.TINY_PLAN, cuda=False, timeout=600, with_ddp=False)
    by_name = {r.name: r for r in rows}
    assert set(by_name) == {'train_cli:loss_falls', 'train_cli:resume'}, rows
    falls, resume = by_name['train_cli:loss_falls'], by_name['train_cli:resume']
    assert falls.status == PASS, falls
    assert falls.numbers['values'] == training.TINY_PLAN.first_iters and falls.numbers['ratio'] < 1
    assert resume.status == PASS, resume
    assert resume.numbers['resumed_at'] == training.TINY_PLAN.first_iters
    assert resume.numbers['first_logged'] == training.TINY_PLAN.first_iters + 1
    assert resume.numbers['last_logged'] == training.TINY_PLAN.total_iters and resume.numbers['state_saved']
    exp = tmp_path / 'experiments' / 'gpu_check_train'
    # the same checker fails when the resumed run did not start at the saved iteration
    log = sorted(exp.glob('train_*.log'))[-1].read_text().replace('iter: 8.', 'iter: 6.')
    assert training.resume_row(log, training.TINY_PLAN, exp, 0.0, False).status == FAIL
    # ... and when the resumed run saved no state at its last iteration
    log = sorted(exp.glob('train_*.log'))[-1].read_text()
    assert training.resume_row(log, training.TINY_PLAN, exp, 0.0, False).status == PASS
    (exp / 'training_states' / f'{training.TINY_PLAN.total_iters}.state').unlink()
    assert training.resume_row(log, training.TINY_PLAN, exp, 0.0, False).status == FAIL


def test_inference_rows_on_the_cpu(tmp_path):
    rows = inference.inference_rows(tmp_path, inference.TINY_INFER, device='cpu', log=lambda _: None)
    assert [r.name for r in rows] == ['infer:cspsr_cuda_vs_cpu', 'infer:cspsr_tiled', 'infer:edsr_tiled_exact']
    assert all(r.status == PASS for r in rows), rows
    assert rows[0].numbers['max_diff'] == 0.0  # the same device twice: identical
    assert rows[2].numbers['max_diff'] <= inference.EXACT_TOL and rows[2].numbers['tile'] == 16
    a = inference.infer(*inference.write_model(tmp_path / 'm', 'EDSR', inference.TINY_INFER.edsr_net),
                        inference.write_pair(tmp_path / 'p', 40, 28), tmp_path / 'a.png', 'cpu', tile=16, overlap=1)
    b = inference.infer(*inference.write_model(tmp_path / 'm', 'EDSR', inference.TINY_INFER.edsr_net),
                        inference.write_pair(tmp_path / 'p', 40, 28), tmp_path / 'b.png', 'cpu')
    assert not inference.difference(a, b, inference.EXACT_TOL)['passed']  # an overlap below the receptive field


def test_tool_without_cuda_exits_3_and_skips_the_gpu_rows(tmp_path):
    out = tmp_path / 'gpu_check.json'
    done = subprocess.run([sys.executable, str(ROOT / 'tools' / 'gpu_check.py'), '--tiny', '--out', str(out),
                           '--only', 'equivalence', 'infer', 'train', 'ddp', 'compile', 'timing'],
                          cwd=tmp_path, env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == EXIT_NO_CUDA, done.stderr[-3000:]
    assert 'GPU checks did NOT run' in done.stdout
    data = json.loads(out.read_text())
    assert data['exit_code'] == EXIT_NO_CUDA and data['machine']['cuda_available'] is False
    rows = {r['name']: r for r in data['rows']}
    cpu = [r for r in rows.values() if not r['gpu']]
    assert {r['name'] for r in cpu} == {f'cpu_ref:{c}' for c in checks.CASES} | {'cpu_ref:fused_vs_reference_dmf'}
    assert all(r['status'] == PASS for r in cpu)
    # the reference DMF is another computation than the fused one: close, not identical
    fused_vs_ref = rows['cpu_ref:fused_vs_reference_dmf']['numbers']
    assert 0 < fused_vs_ref['fwd_max_abs_diff'] and 0 < fused_vs_ref['bwd_max_abs_diff']
    gpu = [r for r in rows.values() if r['gpu']]
    assert {f'cuda_vs_cpu:{c}' for c in checks.CASES} | {'cuda_compile:cspsr', 'infer:cspsr_tiled',
                                                         'train_cli:resume', 'ddp_torchrun',
                                                         'timing:CSPSR:fp32'} <= set(rows)
    assert all(r['status'] == SKIPPED and r['reason'].startswith(NO_CUDA) for r in gpu)


def test_compile_row_reads_the_worker_result(tmp_path, monkeypatch):
    from cspsr_arch.gpu_check import compiled
    calls = []

    def fake_worker(result, returncode=0):
        def run(cmd, **kwargs):
            calls.append(cmd)
            if result is not None:
                Path(cmd[cmd.index('--out') + 1]).write_text(json.dumps(result))
            return subprocess.CompletedProcess(cmd, returncode, '', 'RuntimeError: triton failed')
        monkeypatch.setattr(compiled.subprocess, 'run', run)

    good = {'forward': {'max_rel_diff': 2e-6, 'worst': 'out:sr', 'passed': True, 'tolerance': 1e-4},
            'backward': {'max_rel_diff': 3e-4, 'worst': 'grad:param:x', 'passed': True, 'tolerance': 1e-2},
            'compile_s': 54.0, 'compiled': True}
    fake_worker(good)
    row = compiled.compile_row(checks.TINY_SIZES, 60, tmp_path)
    assert row.status == PASS and row.numbers['bwd_max_rel_diff'] == 3e-4 and row.numbers['compile_s'] == 54.0
    assert calls[-1][calls[-1].index('--device') + 1] == 'cuda'
    assert json.loads(calls[-1][calls[-1].index('--sizes') + 1])['lr_hw'] == list(checks.TINY_SIZES.lr_hw)
    fake_worker({**good, 'backward': {**good['backward'], 'passed': False}})
    assert compiled.compile_row(checks.TINY_SIZES, 60, tmp_path).status == FAIL
    (tmp_path / 'compile.json').unlink()
    fake_worker(None, returncode=1)
    row = compiled.compile_row(checks.TINY_SIZES, 60, tmp_path)
    assert row.status == FAIL and 'triton failed' in row.reason
    fake_worker({'compiled': False, 'why': 'Triton is not installed'})
    assert compiled.compile_row(checks.TINY_SIZES, 60, tmp_path).status == SKIPPED


def test_runner_budget_and_a_crashing_check(tmp_path, monkeypatch):
    from cspsr_arch.gpu_check import runner
    settings = runner.Settings(only=['train', 'ddp', 'compile'], budget_s=0)
    rows = runner.run_checks(settings, tmp_path, cuda=True, log=lambda _: None)
    assert [(r.name, r.status, r.reason) for r in rows] == [
        ('train_cli:loss_falls', SKIPPED, 'time budget'), ('train_cli:resume', SKIPPED, 'time budget'),
        ('ddp_torchrun', SKIPPED, 'time budget'), ('cuda_compile:cspsr', SKIPPED, 'time budget')]
    assert exit_status(rows, cuda=True) == EXIT_INCOMPLETE

    def broken(*args, **kwargs):
        raise OSError('disk full')
    monkeypatch.setattr(inference, 'inference_rows', broken)
    rows = runner.run_checks(runner.Settings(only=['infer']), tmp_path, cuda=True, log=lambda _: None)
    assert [r.status for r in rows] == [FAIL] * 3 and rows[0].reason == 'OSError: disk full'
