"""Faults in training: atomic checkpoints, the NaN/inf guard, SIGKILL then --auto_resume, resuming past bad files."""
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from basicsr.models import build_model
from cli_runs import ENV, _train_options

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.engine.checkpoint import AtomicCheckpointMixin, TrainingDiverged, atomic_torch_save
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.engine.resume import load_resume_state

# Runs `basicsr` with test hooks: CSPSR_TEST_SLEEP seconds per iteration, MSELoss NaN from call CSPSR_TEST_NAN_AT on.
HOOKED_CLI = '''
import os, sys, time
import cspsr_arch
from basicsr.losses.basic_loss import MSELoss
from cspsr_arch.models.cspsr_model import CSPSRModel
sleep, nan_at = float(os.environ.get('CSPSR_TEST_SLEEP', 0)), int(os.environ.get('CSPSR_TEST_NAN_AT', 0))
step, loss = CSPSRModel.optimize_parameters, MSELoss.forward
calls = []
def slow_step(self, it):
    time.sleep(sleep)
    step(self, it)
def nan_loss(self, *args, **kwargs):
    calls.append(1)
    value = loss(self, *args, **kwargs)
    return value * float('nan') if nan_at and len(calls) >= nan_at else value
CSPSRModel.optimize_parameters, MSELoss.forward = slow_step, nan_loss
from cspsr_arch.cli import main
sys.exit(main(sys.argv[1:]))
'''
LOG_ITER = re.compile(r'iter:\s+(\d+)/[0-9,]+, lr:\(([0-9.e+-]+),\)')


def _hooked(tmp_path: Path, args, **env) -> subprocess.Popen:
    script = tmp_path / 'hooked_cli.py'
    script.write_text(HOOKED_CLI)
    return subprocess.Popen([sys.executable, str(script), *args], cwd=tmp_path, env={**ENV, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _logged(log: Path):
    return [(int(i), float(lr)) for i, lr in LOG_ITER.findall(log.read_text())] if log.is_file() else []


def _no_partial_files(exp: Path) -> None:
    leftovers = [p.name for p in exp.rglob('*') if p.name.startswith('.') or p.suffix == '.tmp']
    assert not leftovers, leftovers


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / 'net_g_4.pth'
    atomic_torch_save({'params': {'w': torch.ones(3)}}, str(path))
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b'half a checkpoint')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(OSError):
        atomic_torch_save({'params': {'w': torch.zeros(3)}}, str(path))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ['net_g_4.pth']


def test_a_process_killed_while_saving_leaves_the_old_file(tmp_path):
    path = tmp_path / '8.state'
    atomic_torch_save({'iter': 4}, str(path))
    code = ('import os, sys, torch\nfrom cspsr_arch.engine.checkpoint import atomic_torch_save\n'
            'def dying_save(obj, f, *a, **k):\n    f.write(b"partial"); f.flush(); os.kill(os.getpid(), 9)\n'
            f'torch.save = dying_save\natomic_torch_save({{"iter": 8}}, {str(path)!r})\n')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, timeout=300)
    assert done.returncode == -9
    assert torch.load(path, weights_only=False) == {'iter': 4}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.8.state.')]  # the orphan is a dot file
    atomic_torch_save({'iter': 8}, str(path))  # the next save of the file removes it
    assert [p.name for p in tmp_path.iterdir()] == ['8.state']


class _Saver(AtomicCheckpointMixin):
    def __init__(self, folder: Path) -> None:
        self.opt = {'path': {'models': str(folder), 'training_states': str(folder)}}
        self.optimizers, self.schedulers = [], []

    @staticmethod
    def get_bare_model(net):
        return net


def test_non_finite_weights_are_never_saved(tmp_path):
    saver, net = _Saver(tmp_path), torch.nn.Linear(2, 2)
    saver.save_network(net, 'net_g', 4)
    good = (tmp_path / 'net_g_4.pth').read_bytes()
    with torch.no_grad():
        net.weight[0, 0] = float('nan')
    for it in (6, -1):
        with pytest.raises(TrainingDiverged, match=f'Not saving net_g .params. at iter {it}: 1 weight tensor'):
            saver.save_network(net, 'net_g', it)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net_g_4.pth']
    assert (tmp_path / 'net_g_4.pth').read_bytes() == good


def test_auto_resume_skips_unreadable_or_incomplete_states(tmp_path):
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir(), models.mkdir()
    for it in (2, 4, 6):
        torch.save({'iter': it, 'epoch': 0, 'optimizers': [], 'schedulers': []}, states / f'{it}.state')
    for it in (2, 4):
        torch.save({'params': {}}, models / f'net_g_{it}.pth')
    data = (states / '4.state').read_bytes()
    (states / '4.state').write_bytes(data[:len(data) // 2])  # written by a non-atomic writer, then killed
    opt = {'auto_resume': True, 'num_gpu': 0, 'network_g': {'type': 'CSPSR'},
           'path': {'training_states': str(states), 'models': str(models), 'resume_state': None}}
    with pytest.warns(UserWarning) as record:
        state = load_resume_state(opt)
    assert state['iter'] == 2 and opt['path']['resume_state'] == str(states / '2.state')
    assert opt['path']['pretrain_network_g'] == str(models / 'net_g_2.pth')
    messages = ' '.join(str(w.message) for w in record)
    assert 'net_g_6.pth is missing' in messages and f'Skipping {states / "4.state"}' in messages


def test_nan_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path):
    opt_file = _train_options(tmp_path, total_iter=10)
    proc = _hooked(tmp_path, ['train', '-opt', str(opt_file)], CSPSR_TEST_NAN_AT='5')
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 3, err[-3000:]
    exp = tmp_path / 'experiments' / 'toy_cspsr'
    assert re.search(r'Training stopped at iter 5: the loss is not finite \(l_pix: nan, l_cssc: [0-9.e-]+\)', err)
    assert f'The last checkpoint, {exp / "training_states" / "4.state"} with {exp / "models" / "net_g_4.pth"}' in err
    assert 'Traceback' not in err
    assert sorted(p.name for p in (exp / 'models').iterdir()) == ['net_g_2.pth', 'net_g_4.pth']  # no net_g_latest
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['2.state', '4.state']
    params = torch.load(exp / 'models' / 'net_g_4.pth', weights_only=True)['params']
    assert all(torch.isfinite(v).all() for v in params.values())
    assert torch.load(exp / 'training_states' / '4.state', weights_only=False)['iter'] == 4
    assert 'Training stopped at iter 5' in next(exp.glob('train_*.log')).read_text()
    _no_partial_files(exp)


def _expected_lr(it: int, milestones=(8, 16, 24)) -> float:
    """BasicSR steps the scheduler before iterations 2, 3, ...: lr halves once per milestone below ``it``."""
    return 1e-3 * 0.5**sum(m <= it - 1 for m in milestones)


def test_sigkill_then_auto_resume_continues_the_schedule(tmp_path):
    # one long epoch: BasicSR ends training when its epoch count (computed without drop_last) runs out
    overrides = {'train:total_iter': 30, 'logger:save_checkpoint_freq': 5, 'datasets:train:dataset_enlarge_ratio': 50,
                 'train:scheduler': {'type': 'MultiStepLR', 'milestones': [8, 16, 24], 'gamma': 0.5}}
    opt_file = _train_options(tmp_path, **overrides)
    exp = tmp_path / 'experiments' / 'toy_cspsr'
    proc = _hooked(tmp_path, ['train', '-opt', str(opt_file)], CSPSR_TEST_SLEEP='0.2')
    deadline = time.time() + 300
    killed_after = None
    while time.time() < deadline and proc.poll() is None:
        logs = sorted(exp.glob('train_*.log'))
        if logs and max((i for i, _ in _logged(logs[0])), default=0) >= 13:
            proc.kill()  # SIGKILL: no clean-up of any kind
            proc.wait()
            killed_after = _logged(logs[0])
            break
        time.sleep(0.05)
    assert killed_after is not None and proc.returncode == -9, 'the run ended before it could be killed'
    last_iter = killed_after[-1][0]
    assert last_iter < 30
    states = sorted(int(p.stem) for p in (exp / 'training_states').glob('*.state'))
    saved = states[-1]
    assert saved % 5 == 0 and 0 <= last_iter - saved < 5  # at most one save_checkpoint_freq interval lost
    for path in list((exp / 'models').glob('*.pth')) + list((exp / 'training_states').glob('*.state')):
        torch.load(path, weights_only=False)  # every visible checkpoint file is complete

    proc = _hooked(tmp_path, ['train', '-opt', str(opt_file), '--auto_resume'])
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    log = sorted(exp.glob('train_*.log'))[-1]
    assert re.search(rf'Resuming training from epoch: \d+, iter: {saved}\.', log.read_text())
    resumed = _logged(log)
    assert [i for i, _ in resumed] == list(range(saved + 1, 31))
    for it, lr in killed_after + resumed:  # both runs follow the schedule of an uninterrupted run
        assert lr == pytest.approx(_expected_lr(it), rel=1e-3), it
    overlap = dict(killed_after)
    assert all(overlap[i] == lr for i, lr in resumed if i in overlap)
    assert (exp / 'training_states' / '30.state').is_file() and (exp / 'models' / 'net_g_latest.pth').is_file()


def test_resuming_keeps_the_fine_tuned_disparity_network(tmp_path):
    """path:pretrain_network_disp initialises the CVM once; a resumed run keeps the checkpoint's CVM."""
    net_opt = {'type': 'CSPSR', 'num_feat': 8, 'num_dmf': 1, 'upscale': 2, 'max_disp': 4}
    torch.manual_seed(0)
    tuned = CSPSR(**{k: v for k, v in net_opt.items() if k != 'type'})
    torch.save({'params': tuned.state_dict()}, tmp_path / 'net_g_10.pth')
    pretrained = CSPSR(**{k: v for k, v in net_opt.items() if k != 'type'}).cvm_net
    with torch.no_grad():
        for p in pretrained.parameters():
            p.add_(1.0)
    torch.save({'params': pretrained.state_dict()}, tmp_path / 'disp.pth')

    def cvm_weight(resume_state):
        opt = {'name': 'x', 'model_type': 'CSPSRModel', 'scale': 2, 'num_gpu': 0, 'dist': False, 'rank': 0,
               'world_size': 1, 'is_train': True, 'network_g': dict(net_opt), 'datasets': {},
               'path': {'pretrain_network_g': str(tmp_path / 'net_g_10.pth'), 'strict_load_g': True,
                        'pretrain_network_disp': str(tmp_path / 'disp.pth'), 'resume_state': resume_state},
               'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3},
                         'scheduler': {'type': 'MultiStepLR', 'milestones': [5]},
                         'total_iter': 10, 'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0}}}
        return build_model(opt).net_g.cvm_net.features.body[0].weight.detach()

    fresh, resumed = cvm_weight(None), cvm_weight(str(tmp_path / '10.state'))
    assert torch.equal(fresh, pretrained.features.body[0].weight)
    assert torch.equal(resumed, tuned.cvm_net.features.body[0].weight)


def test_a_checkpoint_that_cannot_be_written_stops_training(tmp_path, monkeypatch):
    import cspsr_arch.engine.checkpoint as checkpoint
    from cspsr_arch.engine.checkpoint import CheckpointSaveError
    monkeypatch.setattr(checkpoint.time, 'sleep', lambda s: None)
    attempts = []

    def full_disk(obj, f, *args, **kwargs):
        attempts.append(1)
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', full_disk)
    saver = _Saver(tmp_path)
    with pytest.raises(CheckpointSaveError, match=rf'cannot save the network {tmp_path / "net_g_4.pth"} \(.*No space '
                       rf'left on device\) after 3 attempts. Free disk space or fix the permissions of {tmp_path}'):
        saver.save_network(torch.nn.Linear(2, 2), 'net_g', 4)
    assert len(attempts) == checkpoint.SAVE_RETRIES
    with pytest.raises(CheckpointSaveError, match=rf'training state {tmp_path / "4.state"}'):
        saver.save_training_state(0, 4)
    assert list(tmp_path.iterdir()) == []


def test_the_command_exits_non_zero_when_a_checkpoint_cannot_be_written(monkeypatch, capsys):
    import cspsr_arch.cli as cli
    from cspsr_arch.engine.checkpoint import CheckpointSaveError

    def failing_run(command, args):
        raise CheckpointSaveError('Training stopped: cannot save the network x/net_g_4.pth (disk full)')

    monkeypatch.setattr(cli, 'run', failing_run)
    assert cli.main(['train', '-opt', 'any.yml']) == 4
    assert 'basicsr train: error: Training stopped: cannot save the network x/net_g_4.pth' in capsys.readouterr().err


def test_auto_resume_with_no_usable_state_stops_instead_of_starting_over(tmp_path):
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir(), models.mkdir()
    torch.save({'iter': 2, 'epoch': 0, 'optimizers': [], 'schedulers': []}, states / '2.state')  # no net_g_2.pth
    (states / '4.state').write_bytes(b'truncated')
    torch.save({'params': {}}, models / 'net_g_4.pth')
    opt = {'auto_resume': True, 'num_gpu': 0, 'network_g': {'type': 'CSPSR'},
           'path': {'training_states': str(states), 'models': str(models), 'resume_state': None}}
    with pytest.warns(UserWarning), pytest.raises(CSPSRInputError, match=rf'found 2 training state\(s\) in {states} '
                                                   'but can resume from none'):
        load_resume_state(opt)
    opt['path']['training_states'] = str(tmp_path / 'empty')  # nothing to resume: a fresh start is right
    assert load_resume_state(opt) is None
