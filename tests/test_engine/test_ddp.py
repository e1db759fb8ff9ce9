"""Distributed training through BasicSR's launcher on the CPU: torchrun, 2 gloo processes, rank-0 checkpoints."""
import re
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
from cli_runs import ENV, _train_options
from toy_data import make_toy_split

from cspsr_arch.engine.distributed import choose_backend, slurm_environment
from cspsr_arch.errors import CSPSRInputError

BIN = Path(sys.executable).parent
# Loaded by every Python process started with this folder on PYTHONPATH: records, per rank, the files
# written by torch.save / os.replace (the atomic checkpoint writer ends with os.replace) and a normal exit.
SITECUSTOMIZE = '''
import atexit, os
_rank, _trace = os.environ.get('RANK'), os.environ.get('CSPSR_TEST_TRACE')
if _rank is not None and _trace:
    import torch
    _log = os.path.join(_trace, f'rank{_rank}.txt')
    def _note(what):
        with open(_log, 'a') as f:
            f.write(what + '\\n')
    _save, _replace = torch.save, os.replace
    def _traced_save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            _note(f'save {os.path.basename(f)}')
        return _save(obj, f, *args, **kwargs)
    def _traced_replace(src, dst, *args, **kwargs):
        _note(f'save {os.path.basename(dst)}')
        return _replace(src, dst, *args, **kwargs)
    torch.save, os.replace = _traced_save, _traced_replace
    atexit.register(_note, 'finished')
'''
LOSSES = re.compile(r'iter:\s+(\d+)/[0-9,]+, lr:.*? l_pix: ([0-9.e+-]+) l_cssc: ([0-9.e+-]+)')


def _square_split(split: Path) -> None:
    """Four toy scenes cropped square, so that a crop of the whole image is the only crop (no randomness)."""
    make_toy_split(split, keys=('a', 'b', 'c', 'd'), size=48, scales=(2, ))
    for path in split.rglob('*.png'):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert cv2.imwrite(str(path), img[:, :img.shape[0]])


def _options(root: Path, batch: int) -> Path:
    _square_split(root / 'data' / 'train')  # where _train_options looks for its data
    return _train_options(root, total_iter=3, **{
        'network_g:cvm': 'none', 'network_g:norm': 'none',  # per-sample computations only
        'datasets:train:gt_size': 48, 'datasets:train:use_hflip': False, 'datasets:train:use_vflip': False,
        'datasets:train:batch_size_per_gpu': batch, 'logger:save_checkpoint_freq': 2})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _losses(exp: Path):
    log = next(exp.glob('train_*.log')).read_text()
    return [(int(i), float(pix), float(cssc)) for i, pix, cssc in LOSSES.findall(log)]


def test_two_gloo_processes_match_one_process(tmp_path):
    single, multi = tmp_path / 'single', tmp_path / 'multi'
    single.mkdir(), multi.mkdir()
    done = subprocess.run([str(BIN / 'basicsr'), 'train', '-opt', str(_options(single, batch=2))], cwd=single,
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    hooks, trace = tmp_path / 'hooks', tmp_path / 'trace'
    hooks.mkdir(), trace.mkdir()
    (hooks / 'sitecustomize.py').write_text(SITECUSTOMIZE)
    env = {**ENV, 'PYTHONPATH': str(hooks), 'CSPSR_TEST_TRACE': str(trace), 'OMP_NUM_THREADS': '1'}
    done = subprocess.run([str(BIN / 'torchrun'), '--nnodes=1', '--nproc_per_node=2', '--master_addr=127.0.0.1',
                           f'--master_port={_free_port()}', '-m', 'cspsr_arch', 'train',
                           '-opt', str(_options(multi, batch=1)), '--launcher', 'pytorch'],
                          cwd=multi, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    notes = {rank: (trace / f'rank{rank}.txt').read_text().splitlines() for rank in (0, 1)}
    assert notes[1] == ['finished']  # rank 1 finished and wrote no checkpoint
    assert notes[0][-1] == 'finished'
    assert {'save net_g_2.pth', 'save 2.state', 'save net_g_latest.pth'} <= set(notes[0])
    exp_single, exp_multi = single / 'experiments' / 'toy_cspsr', multi / 'experiments' / 'toy_cspsr'
    assert sorted(p.name for p in (exp_multi / 'models').iterdir()) == ['net_g_2.pth', 'net_g_latest.pth']
    log = next(exp_multi.glob('train_*.log')).read_text()
    assert 'World size (gpu number): 2' in log and 'Batch size per gpu: 1' in log

    # the same total batch (2 x 1 against 1 x 2) gives the same losses and the same weights
    ref, got = _losses(exp_single), _losses(exp_multi)
    assert [i for i, _, _ in ref] == [i for i, _, _ in got] == [1, 2, 3]
    for (_, pix_a, cssc_a), (_, pix_b, cssc_b) in zip(ref, got):
        assert pix_b == pytest.approx(pix_a, rel=2e-3) and cssc_b == pytest.approx(cssc_a, rel=2e-3)
    weights_a = torch.load(exp_single / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    weights_b = torch.load(exp_multi / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    assert max((weights_a[k] - weights_b[k]).abs().max().item() for k in weights_a) < 1e-5
    assert max((weights_a[k] - torch.load(exp_single / 'models' / 'net_g_2.pth', weights_only=True)['params'][k])
               .abs().max().item() for k in weights_a) > 1e-4  # the third step changed the weights


def test_backend_choice():
    assert choose_backend({'num_gpu': 0}) == 'gloo'
    assert choose_backend({'dist_params': {'backend': 'gloo'}}) == 'gloo'
    if not torch.cuda.is_available():
        assert choose_backend({'num_gpu': 'auto'}) == 'gloo'
        with pytest.raises(CSPSRInputError, match="'nccl' but no GPU"):
            choose_backend({'dist_params': {'backend': 'nccl'}})
    with pytest.raises(CSPSRInputError, match='must be one of nccl, gloo'):
        choose_backend({'dist_params': {'backend': 'mpi'}})


def test_slurm_environment():
    env = {'SLURM_PROCID': '5', 'SLURM_NTASKS': '8', 'SLURM_LOCALID': '1', 'MASTER_ADDR': 'node07'}
    assert slurm_environment(env, port=29555) == {'MASTER_ADDR': 'node07', 'MASTER_PORT': '29555', 'WORLD_SIZE': '8',
                                                  'RANK': '5', 'LOCAL_RANK': '1'}
    assert slurm_environment({**env, 'MASTER_PORT': '1234'})['MASTER_PORT'] == '1234'
    with pytest.raises(CSPSRInputError, match='SLURM_NTASKS'):
        slurm_environment({'SLURM_PROCID': '0'})


def test_the_backend_follows_force_yml(tmp_path):
    """The backend is chosen before BasicSR parses the command line: --force_yml must count there too."""
    from cspsr_arch.engine.pipeline import dist_backend
    (tmp_path / 'o.yml').write_text('num_gpu: 0\ndist_params:\n  backend: nccl\n')
    args = ['-opt', str(tmp_path / 'o.yml'), '--launcher', 'pytorch']
    assert dist_backend(args + ['--force_yml', 'dist_params:backend=gloo']) == 'gloo'
    if not torch.cuda.is_available():
        with pytest.raises(CSPSRInputError, match="'nccl' but no GPU"):
            dist_backend(args)
