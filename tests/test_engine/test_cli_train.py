"""The ``basicsr`` console script: train, resume on CPU, test, --help and clear option errors."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from cli_runs import ENV, _basicsr, _train_options

def test_help_explains_both_subcommands(tmp_path):
    out = _basicsr(['--help'], tmp_path)
    assert out.returncode == 0
    assert 'basicsr train -opt' in out.stdout and 'basicsr test -opt' in out.stdout


def test_train_one_iteration_then_test(tmp_path):
    opt_file = _train_options(tmp_path)
    out = _basicsr(['train', '-opt', str(opt_file)], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'toy_cspsr'
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    log = next(exp.glob('train_toy_cspsr_*.log')).read_text()
    assert re.search(r'l_pix: [0-9.e+-]+ l_cssc: [0-9.e+-]+', log)
    psnr = float(re.findall(r'# psnr: ([0-9.]+)', log)[-1])
    assert 10 < psnr < 60
    # validation images from BasicSR's nondist_validation, under the working directory
    assert list((exp / 'visualization').glob('*/*.png'))
    assert not (Path(sys.prefix) / 'experiments').exists()

    test_opt = yaml.safe_load(opt_file.read_text())
    test_opt['datasets'] = {'test_1': test_opt['datasets']['val']}
    test_opt['path'] = {'pretrain_network_g': str(exp / 'models' / 'net_g_latest.pth')}
    del test_opt['train'], test_opt['logger']
    test_opt['val'] = {'save_img': True, 'suffix': None, 'metrics': test_opt['val']['metrics']}
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(test_opt))
    out = subprocess.run([sys.executable, '-m', 'cspsr_arch', 'test', '-opt', str(tmp_path / 'test.yml')],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = tmp_path / 'results' / 'toy_cspsr'
    assert len(list((results / 'visualization' / 'toy').glob('*.png'))) == 3
    test_psnr = float(re.findall(r'# psnr: ([0-9.]+)', next(results.glob('test_*.log')).read_text())[-1])
    assert test_psnr == pytest.approx(psnr, abs=1e-3)


def test_resume_on_cpu_continues_at_the_right_iteration(tmp_path):
    opt_file = _train_options(tmp_path, total_iter=2)
    assert _basicsr(['train', '-opt', str(opt_file)], tmp_path).returncode == 0
    states = tmp_path / 'experiments' / 'toy_cspsr' / 'training_states'
    assert (states / '2.state').is_file()
    state = torch.load(states / '2.state', weights_only=False)
    assert state['iter'] == 2
    # the lr schedule (milestone at 2) must be carried over: lr halves after resuming
    opt_file = _train_options(tmp_path, total_iter=4)
    out = _basicsr(['train', '-opt', str(opt_file), '--auto_resume'], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    log = sorted((tmp_path / 'experiments' / 'toy_cspsr').glob('train_*.log'))[-1].read_text()
    assert 'Resuming training from epoch' in log and 'iter: 2.' in log
    iters = [int(i) for i in re.findall(r"iter:\s+(\d+)/\d+, lr:", log)]
    assert iters == [3, 4]
    assert re.search(r'iter:\s+3/4, lr:\(5\.000e-04', log)
    assert (states / '4.state').is_file()


def test_misspelled_option_key_is_a_clear_error(tmp_path):
    opt_file = _train_options(tmp_path, **{'train:optim_g:lerning_rate': 1e-3})
    out = _basicsr(['train', '-opt', str(opt_file)], tmp_path)
    assert out.returncode == 2
    assert "Unknown option 'train:optim_g:lerning_rate'" in out.stderr and 'Traceback' not in out.stderr
    out = _basicsr(['train', '-opt', str(_train_options(tmp_path)), '--force_yml', 'datasets:train:gt_szie=64'],
                   tmp_path)
    assert out.returncode == 2 and "Did you mean 'gt_size'?" in out.stderr


def test_missing_dataroot_is_one_clear_error(tmp_path):
    options = Path(__file__).resolve().parents[2] / 'options' / 'train_CSPSR_x4.yml'
    out = _basicsr(['train', '-opt', str(options)], tmp_path)
    assert out.returncode == 2
    assert 'Data not found' in out.stderr and 'datasets/README.md' in out.stderr and 'Traceback' not in out.stderr
    assert not (tmp_path / 'experiments').exists()
