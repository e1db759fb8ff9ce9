"""Training through the command line: ``basicsr train`` with the paper's options on the embedded synthetic data,
resumed with ``--auto_resume``, and a one-process ``torchrun`` DDP training (NCCL on a GPU).

The options are ``options/train_CSPSR_x4.yml`` as they are (T=15, C=64, learned CVM, 120x120 HR patches,
batch 32, Adam 1e-4, lambda 0.1), pointed by ``--force_yml`` at a small synthetic set generated here
(:func:`cspsr_arch.prep.synthetic.build.make_dataset`, folders instead of the LMDBs of the real set) and
without the pre-trained CVM (``path:pretrain_network_disp=~``). Everything is written under a temporary
working folder (``experiments/<name>`` there).

* ``train_cli:loss_falls``: the first run trains ``first_iters`` iterations (saving its state every
  ``gcd(first_iters, total_iters)``); the logged ``l_pix`` values (every ``print_freq`` iterations) must fall: the
  mean of the last quarter of them below the mean of the first quarter.
* ``train_cli:resume``: the second run, ``--auto_resume`` with ``total_iter`` raised, must log
  ``Resuming training from epoch: X, iter: <first_iters>``, then iterations from ``first_iters + print_freq``
  to ``total_iters``, and save ``<total_iters>.state``.
* ``ddp_torchrun``: ``torchrun --nproc_per_node=1 -m cspsr_arch train ... --launcher pytorch`` with
  ``dist_params:backend=nccl`` trains ``ddp_iters`` iterations, logging each, and saves ``net_g_latest.pth``
  (``gloo`` on the CPU, only with ``--cpu-train``: through an options file over the paper's that says so, as the
  backend is read from the options file before ``--force_yml`` applies).
"""
import dataclasses
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Dict, List, Optional, Sequence, Tuple

from cspsr_arch.gpu_check.report import FAIL, PASS, Row, failed_reason, skipped

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = ROOT / 'options' / 'train_CSPSR_x4.yml'
LOSS_LINE = re.compile(r'iter:\s*([\d,]+)(?:/[\d,]+)?, lr:[^\n]*?\bl_pix: (\S+)')
RESUME_LINE = re.compile(r'Resuming training from epoch: (\d+), iter: (\d+)\.')


@dataclasses.dataclass(frozen=True)
class TrainPlan:
    """What the training checks run.

    Args:
        first_iters: Iterations of the first run (its checkpoint is where the resume starts).
        total_iters: ``total_iter`` of the resumed run.
        print_freq: ``logger:print_freq``.
        ddp_iters: Iterations of the DDP run.
        workers: ``num_worker_per_gpu`` of the training loader.
        data_max_size: Longest HR side of the generated scenes.
        network: Extra ``--force_yml`` items (network and patch sizes; empty: the paper's).
    """

    first_iters: int = 150
    total_iters: int = 200
    print_freq: int = 10
    ddp_iters: int = 20
    workers: int = 8
    data_max_size: int = 480
    network: Tuple[str, ...] = ()


PAPER_PLAN = TrainPlan()
QUICK_PLAN = TrainPlan(first_iters=60, total_iters=80, print_freq=5, ddp_iters=10)
TINY_PLAN = TrainPlan(first_iters=8, total_iters=10, print_freq=1, ddp_iters=2, workers=0, data_max_size=160,
                      network=('network_g:num_feat=8', 'network_g:num_dmf=2', 'network_g:max_disp=4',
                               'datasets:train:gt_size=32', 'datasets:train:batch_size_per_gpu=2',
                               'train:optim_g:lr=0.001'))
TRAIN_SCENES = ('astronaut', 'chelsea', 'coffee', 'rocket', 'textures')
TEST_SCENES = ('motorcycle', )


def parse_losses(log: str, key: str = 'l_pix') -> List[Tuple[int, float]]:
    """``(iteration, loss)`` of every training line of a BasicSR log.

    Args:
        log: The log's text.
        key: Loss name (``l_pix``).
    """
    pattern = re.compile(LOSS_LINE.pattern.replace('l_pix', re.escape(key)))
    return [(int(i.replace(',', '')), float(v)) for i, v in pattern.findall(log)]


def parse_resume(log: str) -> Optional[Tuple[int, int]]:
    """``(epoch, iteration)`` of BasicSR's ``Resuming training from epoch: X, iter: Y.`` line, or None."""
    match = RESUME_LINE.search(log)
    return (int(match.group(1)), int(match.group(2))) if match else None


def loss_falls(losses: Sequence[Tuple[int, float]]) -> Dict:
    """Whether the logged losses fall: the mean of the last quarter of the values below that of the first quarter.

    Args:
        losses: ``(iteration, loss)`` pairs in order (at least 4 are needed).

    Returns:
        dict: ``values``, ``first_mean``, ``last_mean``, ``ratio`` (last / first) and ``passed``.
    """
    values = [v for _, v in losses]
    if len(values) < 4:
        return {'values': len(values), 'passed': False}
    quarter = max(1, len(values) // 4)
    first, last = mean(values[:quarter]), mean(values[-quarter:])
    ratio = last / first if first > 0 else float('inf')
    return {'values': len(values), 'first_mean': first, 'last_mean': last, 'ratio': ratio,
            'passed': bool(ratio < 1.0 and all(v == v and abs(v) != float('inf') for v in values))}


def make_data(folder: Path, max_size: int) -> Dict[str, Path]:
    """Generate the synthetic set (x4, five train scenes, one test scene); returns its two split folders.

    Args:
        folder: Where ``train/`` and ``test/`` go.
        max_size: Longest HR side.
    """
    from cspsr_arch.prep.synthetic.build import make_dataset
    make_dataset(folder, scales=(4, ), seed=0, scenes=list(TRAIN_SCENES + TEST_SCENES), test_scenes=list(TEST_SCENES),
                 variants=1, max_size=max_size, overwrite=True)
    return {'train': folder / 'train', 'val': folder / 'test'}


def data_overrides(splits: Dict[str, Path]) -> List[str]:
    """``--force_yml`` items pointing the options' training and validation sets at the generated folders."""
    from cspsr_arch.prep.split import dataset_roots
    items = ['datasets:train:io_backend:type=disk', 'path:pretrain_network_disp=~']
    for phase, split in splits.items():
        roots = dataset_roots(split, 4)
        for stream in ('gt', 'gt_nir', 'lq', 'lq_nir'):
            items.append(f'datasets:{phase}:dataroot_{stream}={roots[stream]}')
    return items


def basicsr_command() -> List[str]:
    """The ``basicsr`` console script of this environment (``python -m cspsr_arch``, the same, without it)."""
    script = Path(sys.executable).parent / 'basicsr'
    return [str(script)] if script.is_file() else [sys.executable, '-m', 'cspsr_arch']


def _run(cmd: List[str], cwd: Path, env: Dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=max(timeout, 1))


def _new_log(exp: Path, before: Sequence[Path]) -> str:
    logs = sorted(set(exp.glob('train_*.log')) - set(before))
    if not logs:
        raise RuntimeError(f'no new training log in {exp}')
    return logs[-1].read_text()


def _tail(done: subprocess.CompletedProcess) -> str:
    """The error of a failed run: its last line naming an error (torchrun's own summary left out), else its end."""
    lines = (done.stderr or done.stdout or '').strip().splitlines()
    errors = [line for line in lines if ('Error' in line or 'error:' in line)
              and 'ChildFailedError' not in line and 'error_file' not in line]
    return (errors[-1].strip() if errors else ' '.join(lines[-3:]))[-400:]


@dataclasses.dataclass
class TrainSetup:
    """Where and how the training runs go.

    Args:
        workdir: Working folder of the runs (``experiments/`` goes there).
        splits: Generated split folders (:func:`make_data`).
        plan: Iterations and sizes.
        cuda: Train on the GPU (``num_gpu=1``) or on the CPU (``num_gpu=0``, CUDA hidden).
    """

    workdir: Path
    splits: Dict[str, Path]
    plan: TrainPlan
    cuda: bool

    def env(self) -> Dict[str, str]:
        """The subprocesses' environment."""
        return {**os.environ} if self.cuda else {**os.environ, 'CUDA_VISIBLE_DEVICES': ''}

    def overrides(self, name: str, total_iter: int) -> List[str]:
        """``--force_yml`` items of a run called ``name`` of ``total_iter`` iterations."""
        p = self.plan
        return [f'name={name}', f'num_gpu={1 if self.cuda else 0}', f'train:total_iter={total_iter}',
                f'logger:print_freq={p.print_freq}',
                f'logger:save_checkpoint_freq={math.gcd(p.first_iters, p.total_iters)}',
                'logger:use_tb_logger=false', f'datasets:train:num_worker_per_gpu={p.workers}',
                'datasets:train:dataset_enlarge_ratio=1000',  # epochs of thousands of patches: few loader restarts
                f'val:val_freq={10 * p.total_iters}', *data_overrides(self.splits), *p.network]


def train_and_resume(setup: TrainSetup, timeout: float, rows: List[Row]) -> None:
    """Append the rows ``train_cli:loss_falls`` and ``train_cli:resume`` (see the module docstring) to ``rows``.

    Args:
        setup: Folders, plan and device.
        timeout: Seconds both runs may take together.
        rows: Where the rows go (the first stays there when the second run times out).
    """
    p, name = setup.plan, 'gpu_check_train'
    deadline = time.time() + timeout
    exp = setup.workdir / 'experiments' / name
    cmd = basicsr_command() + ['train', '-opt', str(OPTIONS), '--force_yml']
    start = time.time()
    done = _run(cmd + setup.overrides(name, p.first_iters), setup.workdir, setup.env(), deadline - time.time())
    seconds = time.time() - start
    if done.returncode != 0:
        rows += [Row('train_cli:loss_falls', FAIL, {'returncode': done.returncode}, seconds=seconds, gpu=setup.cuda,
                     reason=f'basicsr train failed: {_tail(done)}'),
                 skipped('train_cli:resume', 'the first training run failed', gpu=setup.cuda)]
        return
    log = _new_log(exp, [])
    losses = parse_losses(log)
    falls = loss_falls(losses)
    numbers = {'iters': p.first_iters, 'wall_it_s': round(p.first_iters / seconds, 2),
               **{k: v for k, v in falls.items() if k != 'passed'}}
    rows.append(Row('train_cli:loss_falls', PASS if falls['passed'] else FAIL, numbers,
                    {'rule': 'mean l_pix of the last quarter of the logged values < that of the first quarter'},
                    seconds, '' if falls['passed'] else 'l_pix did not fall', gpu=setup.cuda))
    before = list(exp.glob('train_*.log'))
    start = time.time()
    done = _run(cmd + setup.overrides(name, p.total_iters) + ['--auto_resume'], setup.workdir, setup.env(),
                deadline - time.time())
    seconds = time.time() - start
    if done.returncode != 0:
        rows.append(Row('train_cli:resume', FAIL, {'returncode': done.returncode}, seconds=seconds, gpu=setup.cuda,
                        reason=f'basicsr train --auto_resume failed: {_tail(done)}'))
        return
    rows.append(resume_row(_new_log(exp, before), p, exp, seconds, setup.cuda))


def resume_row(log: str, plan: TrainPlan, exp: Path, seconds: float, gpu: bool) -> Row:
    """``train_cli:resume`` from the log of the resumed run.

    Args:
        log: The resumed run's log.
        plan: Iterations of both runs.
        exp: The experiment folder (``training_states/<total_iters>.state`` must be there).
        seconds: Wall time of the resumed run.
        gpu: Whether it trained on the GPU.
    """
    resumed = parse_resume(log)
    iters = [i for i, _ in parse_losses(log)]
    expected = list(range(plan.first_iters + plan.print_freq, plan.total_iters + 1, plan.print_freq))
    state = (exp / 'training_states' / f'{plan.total_iters}.state').is_file()
    problems = []
    if resumed is None or resumed[1] != plan.first_iters:
        problems.append(f'resume line {resumed}, expected iter {plan.first_iters}')
    if iters != expected:
        problems.append(f'logged iterations {iters[:3]}...{iters[-2:]}, expected {expected[0]}..{expected[-1]}')
    if not state:
        problems.append(f'no {plan.total_iters}.state')
    numbers = {'resumed_at': resumed and resumed[1], 'first_logged': iters[0] if iters else None,
               'last_logged': iters[-1] if iters else None, 'state_saved': state}
    return Row('train_cli:resume', FAIL if problems else PASS, numbers,
               {'resumed_at': plan.first_iters, 'logged': f'{expected[0]}..{expected[-1]}'}, seconds,
               '; '.join(problems), gpu=gpu)


def free_port() -> int:
    """A TCP port nothing listens on now (for torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def ddp_row(setup: TrainSetup, timeout: float) -> Row:
    """``ddp_torchrun``: one process through ``torchrun`` and ``--launcher pytorch``, NCCL on CUDA (gloo on the CPU).

    Args:
        setup: Folders, plan and device.
        timeout: Seconds the run may take.
    """
    p, name = setup.plan, 'gpu_check_ddp'
    backend = 'nccl' if setup.cuda else 'gloo'
    options = OPTIONS
    if not setup.cuda:
        # the backend is chosen from the options file before --force_yml applies (cspsr_arch.engine.pipeline.
        # dist_backend), and the paper's file says nccl: on the CPU, a file over it that says gloo
        options = setup.workdir / 'train_CSPSR_x4_gloo.yml'
        options.write_text(f'base: {OPTIONS}\ndist_params:\n  backend: gloo\n')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes=1', '--nproc_per_node=1',
           '--master_addr=127.0.0.1', f'--master_port={free_port()}', '-m', 'cspsr_arch', 'train', '-opt', str(options),
           '--launcher', 'pytorch', '--force_yml', *setup.overrides(name, p.ddp_iters),
           f'dist_params:backend={backend}',
           f'logger:save_checkpoint_freq={p.ddp_iters}', 'logger:print_freq=1']
    start = time.time()
    done = _run(cmd, setup.workdir, setup.env(), timeout)
    seconds = time.time() - start
    if done.returncode != 0:
        return Row('ddp_torchrun', FAIL, {'returncode': done.returncode, 'backend': backend}, seconds=seconds,
                   reason=f'torchrun failed: {_tail(done)}', gpu=setup.cuda)
    exp = setup.workdir / 'experiments' / name
    log = _new_log(exp, [])
    iters = [i for i, _ in parse_losses(log)]
    dist = "'dist': True" in log or 'dist: true' in log.lower()
    problems = []
    if iters != list(range(1, p.ddp_iters + 1)):
        problems.append(f'logged iterations {iters}')
    if not (exp / 'models' / 'net_g_latest.pth').is_file():
        problems.append('no net_g_latest.pth')
    return Row('ddp_torchrun', FAIL if problems else PASS,
               {'backend': backend, 'iters': len(iters), 'world_size_1': 'World size (gpu number): 1' in log,
                'dist_in_options': dist}, {'iters': p.ddp_iters}, seconds, '; '.join(problems), gpu=setup.cuda)


def _why(err: Exception) -> str:
    """A FAIL row's reason for an exception (a timeout says how long it waited)."""
    return f'timed out after {err.timeout:.0f} s' if isinstance(err, subprocess.TimeoutExpired) else failed_reason(err)


def training_rows(workdir: Path, plan: TrainPlan, cuda: bool, timeout: float, with_train: bool = True,
                  with_ddp: bool = True, log=print) -> List[Row]:
    """Generate the data, then the rows ``train_cli:*`` (with ``with_train``) and ``ddp_torchrun`` (with ``with_ddp``).

    Args:
        workdir: Working folder (the generated data is removed at the end, the experiments are kept).
        plan: Iterations and sizes.
        cuda: On the GPU (else the CPU).
        timeout: Seconds for all of it.
        with_train: Run ``basicsr train`` and its resume.
        with_ddp: Run the DDP check.
        log: Progress lines.
    """
    deadline = time.time() + timeout
    workdir.mkdir(parents=True, exist_ok=True)
    log(f'[gpu_check] training: generating the synthetic data in {workdir / "data"}')
    setup = TrainSetup(workdir, make_data(workdir / 'data', plan.data_max_size), plan, cuda)
    rows: List[Row] = []
    if with_train:
        log(f'[gpu_check] training: basicsr train {plan.first_iters} iterations, then --auto_resume to '
            f'{plan.total_iters}')
    try:
        if with_train:
            train_and_resume(setup, deadline - time.time() - (0.25 * timeout if with_ddp else 0), rows)
    except Exception as err:  # noqa: BLE001  (a timeout, a missing log: a FAIL row, not a crash)
        rows.append(Row('train_cli:resume' if rows else 'train_cli:loss_falls', FAIL, reason=_why(err), gpu=cuda))
    if with_ddp:
        log(f'[gpu_check] training: torchrun DDP, {plan.ddp_iters} iterations')
        try:
            rows.append(ddp_row(setup, deadline - time.time()))
        except Exception as err:  # noqa: BLE001
            rows.append(Row('ddp_torchrun', FAIL, reason=_why(err), gpu=cuda))
    shutil.rmtree(workdir / 'data', ignore_errors=True)
    return rows
