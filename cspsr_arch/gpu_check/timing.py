"""Training speed, inference latency and peak GPU memory of CSPSR, EDSR and the concatenation baseline.

For each model (``options/train_{CSPSR,EDSR,ConcatNIR}_x4.yml``, the paper's sizes: batch 32 of 120x120 HR
patches for training, one 582x429 frame, LR 145x107, for inference) and each precision (fp32, and half
precision under ``torch.autocast`` with the type ``basicsr infer --half`` picks,
:func:`cspsr_arch.archs.precision.half_dtype`: bf16 on a GPU that has it), one row ``timing:<model>:fp32`` or
``timing:<model>:half`` (its ``dtype`` says which type):

* ``train_it_s``: iterations per second of the model's own ``optimize_parameters`` (BasicSR's ``build_model``:
  losses, Adam, L_CSSC for CSPSR) on a random batch already on the device (data loading not included), the
  median over the timed iterations after a few warm-up ones;
* ``train_peak_MB``: ``torch.cuda.max_memory_allocated`` over those iterations;
* ``infer_ms``: median latency of one forward pass (``torch.no_grad``, eval mode), ``infer_peak_MB`` its peak;
* ``loss``: the last training loss (it must be finite, else the row fails);
* ``train_dtype``, ``infer_dtype``: the type the network's body computed in (the output of its first convolution
  outside the learned CVM, which keeps fp32 by design); it must be the row's precision, else the row fails.

Half precision in training: ``train: amp`` of ``CSPSRModel`` where the project has it (its training step sets
autocast itself), else ``torch.autocast`` around BasicSR's training step (EDSR's ``SRModel``).

TF32 stays at PyTorch's defaults here (what a training run gets). On the CPU (``--cpu-timing``, tiny sizes)
the memory figures are absent and half precision runs only where the CPU has bf16 instructions.
"""
import dataclasses
import math
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from cspsr_arch.gpu_check.report import FAIL, PASS, Row, failed_reason, skipped

ROOT = Path(__file__).resolve().parents[2]
MODELS = ('CSPSR', 'EDSR', 'ConcatNIR')


@dataclasses.dataclass(frozen=True)
class TimingSizes:
    """Sizes and counts of the timing rows.

    Args:
        batch: Training batch.
        gt_size: HR patch side.
        frame_hw: LR (height, width) of the inference frame.
        train_iters: Timed training iterations.
        warmup: Untimed iterations (training and inference) before them.
        infer_runs: Timed forward passes.
        network: ``network_g`` changes per model (empty: the paper's networks).
    """

    batch: int = 32
    gt_size: int = 120
    frame_hw: Tuple[int, int] = (107, 145)
    train_iters: int = 10
    warmup: int = 3
    infer_runs: int = 10
    network: Tuple[Tuple[str, Tuple[Tuple[str, int], ...]], ...] = ()


PAPER_TIMING = TimingSizes()
QUICK_TIMING = TimingSizes(train_iters=5, warmup=2, infer_runs=5)
TINY_TIMING = TimingSizes(batch=2, gt_size=32, frame_hw=(12, 16), train_iters=2, warmup=1, infer_runs=2, network=(
    ('CSPSR', (('num_feat', 8), ('num_dmf', 2), ('max_disp', 4))), ('EDSR', (('num_feat', 8), ('num_block', 2))),
    ('ConcatNIR', (('num_feat', 8), ('num_dmf', 2)))))


def model_options(name: str, sizes: TimingSizes, device: torch.device) -> dict:
    """The training options of ``options/train_<name>_x4.yml`` at ``sizes``, ready for ``build_model``.

    Args:
        name: One of :data:`MODELS`.
        sizes: Batch, patch and network sizes.
        device: Where the model goes (``num_gpu`` 1 on CUDA, else 0).
    """
    from cspsr_arch.engine.options import load_options, plain
    opt = plain(load_options(str(ROOT / 'options' / f'train_{name}_x4.yml')))
    opt['network_g'].update(dict(dict(sizes.network).get(name, ())))
    opt['datasets']['train'].update(batch_size_per_gpu=sizes.batch, gt_size=sizes.gt_size)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=1 if device.type == 'cuda' else 0, path={})
    opt['train'].pop('compile', None)
    return opt


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> Optional[float]:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else None


def _timed(step: Callable[[int], None], count: int, first: int, device: torch.device) -> List[float]:
    times = []
    for i in range(count):
        _sync(device)
        start = time.perf_counter()
        step(first + i)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def watch_compute_dtype(net: torch.nn.Module) -> Dict[str, str]:
    """A dict that a forward hook fills with the output type (``'dtype'``: ``float32``, ``bfloat16``) of the
    network's first convolution outside the learned CVM (which keeps fp32 by design): the precision its body ran in.

    Args:
        net: The network (CSPSR, EDSR ...).
    """
    seen: Dict[str, str] = {}
    conv = next(m for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d) and not n.startswith('cvm_net'))

    def record(_module: torch.nn.Module, _inputs: tuple, out: torch.Tensor) -> None:  # None: the output stays
        seen.setdefault('dtype', str(out.dtype).replace('torch.', ''))

    conv.register_forward_hook(record)
    return seen


def time_model(name: str, sizes: TimingSizes, device: torch.device, dtype: Optional[torch.dtype]) -> Dict[str, float]:
    """Training and inference figures of one model at one precision (see the module docstring).

    Args:
        name: One of :data:`MODELS`.
        sizes: Sizes and counts.
        device: Where it runs.
        dtype: Half-precision type for autocast, or None for fp32.
    """
    from basicsr.models import build_model

    from cspsr_arch.benchmark.throughput import random_batch
    from cspsr_arch.engine.options import TRAIN_KEYS
    opt = model_options(name, sizes, device)
    # CSPSRModel's own mixed precision (``train: amp``: its training step sets autocast itself, with the fp16
    # gradient scaler); an outer autocast around BasicSR's SRModel (EDSR)
    own_amp = opt['model_type'] == 'CSPSRModel' and 'amp' in TRAIN_KEYS
    if own_amp and dtype is not None:
        opt['train']['amp'] = {torch.bfloat16: 'bf16', torch.float16: 'fp16'}[dtype]
    torch.manual_seed(0)
    model = build_model(opt)
    model.feed_data({k: v.to(device) for k, v in random_batch(opt).items()})
    seen = watch_compute_dtype(model.net_g)

    def autocast(inference: bool = False) -> torch.autocast:
        enabled = dtype is not None and (inference or not own_amp)
        return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=enabled)

    def train_step(it: int) -> None:
        with autocast():
            model.optimize_parameters(it)

    _timed(train_step, sizes.warmup, 1, device)
    _reset_peak(device)
    train_times = _timed(train_step, sizes.train_iters, sizes.warmup + 1, device)
    figures = {'train_it_s': 1 / statistics.median(train_times), 'train_peak_MB': _peak_mb(device),
               'loss': float(sum(v for k, v in model.log_dict.items() if k.startswith('l_'))),
               'train_dtype': seen.get('dtype')}
    net = model.net_g
    net.eval()
    gen = torch.Generator().manual_seed(0)
    h, w = sizes.frame_hw
    args = [torch.rand(1, 3, h, w, generator=gen).to(device)]
    if opt['model_type'] == 'CSPSRModel':
        args.append(torch.rand(1, 1, h, w, generator=gen).to(device))

    def infer_step(_: int) -> None:
        with torch.no_grad(), autocast(inference=True):
            net(*args)

    seen.clear()
    _timed(infer_step, sizes.warmup, 0, device)
    figures['infer_dtype'] = seen.get('dtype')
    _reset_peak(device)
    figures['infer_ms'] = 1000 * statistics.median(_timed(infer_step, sizes.infer_runs, 0, device))
    figures['infer_peak_MB'] = _peak_mb(device)
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items() if v is not None}


def timing_rows(sizes: TimingSizes, device: torch.device, models=MODELS, deadline: float = math.inf,
                log=print) -> List[Row]:
    """One row per model and precision (fp32, then half precision); rows past ``deadline`` are SKIPPED.

    Args:
        sizes: Sizes and counts.
        device: Where to time (``cuda``; ``cpu`` with ``--cpu-timing``).
        models: Models to time.
        deadline: ``time.time()`` after which no row starts.
        log: Progress lines.
    """
    from cspsr_arch.errors import CSPSRInputError
    from cspsr_arch.archs.precision import half_dtype
    try:
        half, why = half_dtype(device), ''
    except CSPSRInputError:
        half, why = None, f'no bf16 instructions on this {device.type.upper()}'
    gpu = device.type == 'cuda'
    rows: List[Row] = []
    for name in models:
        for label, dtype in (('fp32', None), ('half', half)):
            row_name = f'timing:{name}:{label}'
            if label == 'half' and half is None:
                rows.append(skipped(row_name, why, gpu=gpu))
                continue
            if time.time() > deadline:
                rows.append(skipped(row_name, 'time budget', gpu=gpu))
                continue
            log(f'[gpu_check] timing: {name} {label}')
            start = time.time()
            try:
                figures = time_model(name, sizes, device, dtype)
                wanted = str(dtype or torch.float32).replace('torch.', '')
                problems = [] if math.isfinite(figures['loss']) else ['non-finite training loss']
                problems += [f'{k} ran in {figures[k]}, not {wanted}' for k in ('train_dtype', 'infer_dtype')
                             if figures[k] != wanted]
                rows.append(Row(row_name, FAIL if problems else PASS, {'dtype': wanted, **figures},
                                {'loss': 'finite', 'dtype': wanted}, time.time() - start, '; '.join(problems), gpu=gpu))
            except Exception as err:  # noqa: BLE001
                rows.append(Row(row_name, FAIL, seconds=time.time() - start, reason=failed_reason(err), gpu=gpu))
            if gpu:  # the model of the row is gone: its memory back to the device for the next one
                torch.cuda.empty_cache()
    return rows

