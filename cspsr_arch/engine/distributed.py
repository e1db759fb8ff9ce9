"""Distributed training on GPUs or CPUs through BasicSR's launchers (``--launcher pytorch|slurm``).

BasicSR's ``init_dist`` hard-codes the ``nccl`` backend and calls ``torch.cuda.set_device``, and its
``model_to_device`` wraps networks in ``DistributedDataParallel(device_ids=[torch.cuda.current_device()])``:
both fail without a GPU. The ``basicsr`` command swaps in :func:`init_dist` and
:func:`model_to_device` while a pipeline runs (BasicSR itself is not changed). The backend is
``dist_params:backend`` when the options set it, else ``nccl`` when CUDA is there and ``num_gpu`` is not
0, else ``gloo``.
"""
import os
import subprocess
from typing import Callable, Mapping, Optional

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cspsr_arch.errors import CSPSRInputError

BACKENDS = ('nccl', 'gloo')
DEFAULT_PORT = 29500


def choose_backend(opt: Mapping) -> str:
    """The process-group backend for these options (see the module docstring).

    Args:
        opt (Mapping): Options (``dist_params``, ``num_gpu``), as loaded from the YAML file.

    Returns:
        str: ``'nccl'`` or ``'gloo'``.
    """
    backend = (opt.get('dist_params') or {}).get('backend')
    if backend is not None:
        if backend not in BACKENDS:
            raise CSPSRInputError(f"dist_params:backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
        if backend == 'nccl' and not torch.cuda.is_available():
            raise CSPSRInputError("dist_params:backend is 'nccl' but no GPU is visible; use 'gloo' on CPUs.")
        return backend
    return 'nccl' if torch.cuda.is_available() and opt.get('num_gpu', 1) != 0 else 'gloo'


def slurm_environment(env: Mapping[str, str], port: Optional[int] = None) -> dict:
    """``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` from Slurm's variables.

    The master address is ``MASTER_ADDR`` if set, else the first host of ``SLURM_NODELIST`` (through
    ``scontrol show hostnames``); the port is ``port`` (``dist_params:port``), else ``MASTER_PORT``, else 29500.

    Args:
        env (Mapping[str, str]): The environment (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_NODELIST``,
            ``SLURM_LOCALID``).
        port (int | None): Master port from the options.

    Returns:
        dict: Variables to put into ``os.environ``.
    """
    try:
        rank, world = int(env['SLURM_PROCID']), int(env['SLURM_NTASKS'])
    except KeyError as err:
        raise CSPSRInputError(f'--launcher slurm needs the Slurm variable {err.args[0]}: start the job with '
                              'srun.') from None
    addr = env.get('MASTER_ADDR')
    if not addr:
        nodes = env.get('SLURM_NODELIST') or env.get('SLURM_JOB_NODELIST')
        if not nodes:
            raise CSPSRInputError('--launcher slurm: SLURM_NODELIST is not set; start the job with srun.')
        addr = subprocess.run(['scontrol', 'show', 'hostnames', nodes], capture_output=True, text=True,
                              check=True).stdout.split()[0]
    return {
        'MASTER_ADDR': addr,
        'MASTER_PORT': str(port if port is not None else env.get('MASTER_PORT', DEFAULT_PORT)),
        'WORLD_SIZE': str(world),
        'RANK': str(rank),
        'LOCAL_RANK': str(env.get('SLURM_LOCALID', rank)),
    }


def make_init_dist(chosen: str) -> Callable[..., None]:
    """A replacement for ``basicsr.utils.dist_util.init_dist`` that uses the backend ``chosen``.

    Args:
        chosen (str): ``'nccl'`` (one GPU per process, chosen by ``LOCAL_RANK``) or ``'gloo'``; from
            :func:`choose_backend`, which already read ``dist_params:backend``.

    Returns:
        Callable: ``init_dist(launcher, **dist_params)`` as BasicSR's ``parse_options`` calls it.
    """

    def init_dist(launcher: str, backend: Optional[str] = None, port: Optional[int] = None) -> None:
        if mp.get_start_method(allow_none=True) is None:
            mp.set_start_method('spawn')
        if launcher == 'slurm':
            os.environ.update(slurm_environment(os.environ, port))
        elif launcher != 'pytorch':
            raise CSPSRInputError(f'Unknown launcher {launcher!r}: use none, pytorch or slurm.')
        for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
            if name not in os.environ:
                raise CSPSRInputError(f'--launcher {launcher}: {name} is not set. Start the processes with '
                                      'torchrun --nproc_per_node=N -m cspsr_arch train ... (or srun for slurm).')
        if chosen == 'nccl':
            local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend=chosen)

    return init_dist


def make_model_to_device(original: Callable) -> Callable:
    """Wrap ``BaseModel.model_to_device``: on the CPU, distributed training uses DDP without device ids.

    Args:
        original (Callable): BasicSR's ``BaseModel.model_to_device``.

    Returns:
        Callable: The method to put on ``BaseModel`` while a pipeline runs.
    """

    def model_to_device(self, net: nn.Module) -> nn.Module:
        if not (self.opt['dist'] and self.device.type == 'cpu'):
            return original(self, net)
        return DistributedDataParallel(net.to(self.device), device_ids=None,
                                       find_unused_parameters=self.opt.get('find_unused_parameters', False))

    return model_to_device


def shutdown() -> None:
    """Destroy the default process group if one was created (call once the pipeline has finished)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
