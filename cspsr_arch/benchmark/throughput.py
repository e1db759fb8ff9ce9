"""Training throughput of a benchmark run's model: iterations per second, eager and compiled.

The model is built from the run's options by BasicSR's ``build_model`` (``SRModel`` or ``CSPSRModel``,
with its losses, optimizer and EMA) and its own ``optimize_parameters`` runs on random batches of the
run's batch and patch size, so one iteration costs what it costs in ``basicsr train`` minus the data
loading. A few warm-up iterations (the compilation, with ``compiled``) are not timed.
"""
import copy
import statistics
import time
from typing import Dict

import torch

STREAMS_NIR = ('lq_nir', 'gt_nir', 'disp', 'disp_r')


def random_batch(opt: dict) -> Dict[str, torch.Tensor]:
    """A training batch of random images of the options' batch and HR patch size (all streams)."""
    data = opt['datasets']['train']
    scale, batch, gt_size = opt['scale'], data['batch_size_per_gpu'], data['gt_size']
    lr_size = gt_size // scale
    gen = torch.Generator().manual_seed(0)
    out = {'lq': torch.rand(batch, 3, lr_size, lr_size, generator=gen),
           'gt': torch.rand(batch, 3, gt_size, gt_size, generator=gen)}
    if opt['model_type'] == 'CSPSRModel':
        out.update(lq_nir=torch.rand(batch, 1, lr_size, lr_size, generator=gen),
                   gt_nir=torch.rand(batch, 1, gt_size, gt_size, generator=gen),
                   disp=torch.full((batch, 1, lr_size, lr_size), 2.0), disp_r=torch.full((batch, 1, lr_size, lr_size), 2.0))
    return out


def training_throughput(opt: dict, iters: int = 24, warmup: int = 3, compiled: bool = False) -> Dict[str, float]:
    """Iterations per second of ``optimize_parameters`` for a run's options.

    Args:
        opt: The run's complete BasicSR options.
        iters: Timed iterations (a few dozen: the figure is a median over them).
        warmup: Untimed iterations first (they include the compilation).
        compiled: Through ``torch.compile`` (``train: compile`` for CSPSRModel, the network itself otherwise).

    Returns:
        dict: ``it_s`` (median over the timed iterations) and ``warmup_s`` (the untimed ones, compilation included).
    """
    from basicsr.models import build_model

    from cspsr_arch.engine.compile import compile_network
    opt = copy.deepcopy(opt)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=0, path={})  # no pretrained weights needed
    opt['train'].pop('compile', None)
    if compiled and opt['model_type'] == 'CSPSRModel':
        opt['train']['compile'] = True
    model = build_model(opt)
    if compiled and opt['model_type'] != 'CSPSRModel':
        model.net_g = compile_network(model.net_g, dynamic_size=False)  # this model is thrown away: no checkpoint
    model.feed_data(random_batch(opt))
    start = time.perf_counter()
    for it in range(warmup):
        model.optimize_parameters(it + 1)
    warmup_s = time.perf_counter() - start
    times = []
    for it in range(iters):
        start = time.perf_counter()
        model.optimize_parameters(warmup + it + 1)
        times.append(time.perf_counter() - start)
    return {'it_s': 1.0 / statistics.median(times), 'warmup_s': warmup_s}
