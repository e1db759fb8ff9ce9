"""Profile SR networks on one frame: parameters, GFLOPs, latency and peak memory (``tools/profile_model.py``).

Default: the paper's CSPSR (``CSPSR()``) beside BasicSR's EDSR baseline (64 features, 16 blocks, x4),
on a 582x429 HR frame (LR 145x107 at x4; HR cropped to 580x428), on the CPU. ``--models`` also takes
RCAN, HAT and ConcatNIR; every network is the ``network_g`` of ``options/train_<model>_x4.yml`` (with
``upscale`` set to ``--scale``). The benchmark pipeline (:mod:`cspsr_arch.benchmark.pipeline`) calls
:func:`profile` and :func:`cpu_peak_memory` with the networks it trained.

* **GFLOPs**: ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass (a multiply-add
  counts 2 FLOPs; element-wise operations such as the dynamic filtering are not counted by it).
* **Latency**: median of ``--runs`` timed forward passes after one warm-up, all models in this process,
  timed in rounds (each network once per round: :func:`interleaved_latency`), so their ratios compare
  the same minutes of a machine whose speed drifts.
* **Compiled** (``--compile``): a second row per model with the latency of ``torch.compile`` (inductor,
  height and width dynamic, as ``basicsr infer --compile`` runs it) and the one-off compilation time
  (its first call); GFLOPs and parameters are those of the eager row.
* **Half precision** (``--half``): a third row per model timed under ``torch.autocast`` in the type of
  ``basicsr infer --half`` (:func:`cspsr_arch.infer.command.half_dtype`: bf16 on a CPU with bf16 instructions,
  bf16 or fp16 on a GPU; refused on a CPU that would emulate it), with the mean absolute difference of its
  output from the fp32 output (images in [0, 1]).
* **Peak memory**: on CUDA, ``torch.cuda.max_memory_allocated``; on the CPU (Linux), the growth of the
  peak resident set size during one forward pass in a fresh process that built the model (the peak is
  reset through ``/proc/self/clear_refs`` just before it; the process runs this module:
  ``python -m cspsr_arch.benchmark.profile <network_g JSON> <LR WxH>``).

Usage: ``python tools/profile_model.py [--models CSPSR EDSR RCAN HAT ConcatNIR] [--hr 582x429] [--scale 4]
[--runs 5] [--device cpu] [--compile] [--half] [--json results/profile.json]``.
"""
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from cspsr_arch.benchmark.paths import ROOT

MODELS = ('CSPSR', 'EDSR', 'RCAN', 'HAT', 'ConcatNIR')


def network_options(name: str, scale: int) -> Dict[str, object]:
    """``network_g`` of ``options/train_<name>_x4.yml`` with ``upscale`` = ``scale``.

    Args:
        name: One of :data:`MODELS`.
        scale: Scale factor.
    """
    from cspsr_arch.engine.options import load_options
    if name not in MODELS:
        raise ValueError(f'unknown model {name!r}: choose from {", ".join(MODELS)}')
    opt = dict(load_options(str(ROOT / 'options' / f'train_{name}_x4.yml'))['network_g'])
    opt['upscale'] = scale
    return opt


def build(network_opt: Dict[str, object]) -> Tuple[torch.nn.Module, bool]:
    """The network of BasicSR ``network_g`` options, and whether it takes the NIR stream (``lq, lq_nir, disp``).

    Args:
        network_opt: ``type`` (a registered arch) and its arguments.
    """
    import cspsr_arch  # noqa: F401  (registers CSPSR, HAT)
    from basicsr.utils.registry import ARCH_REGISTRY

    from cspsr_arch.infer.vis_only import reads_nir
    opt = dict(network_opt)
    arch = opt.pop('type')
    return ARCH_REGISTRY.get(arch)(**opt), reads_nir(arch)  # CSPSR and every NIR-guided comparison network


def inputs(cross_spectral: bool, lr_hw: Tuple[int, int], device: torch.device, nir_scale: int = 1) -> tuple:
    """Random inputs of the LR size (a constant 2-pixel disparity for CSPSR), the NIR at ``nir_scale`` x it.

    Args:
        cross_spectral: The network takes ``lq, lq_nir, disp`` (else ``lq`` alone).
        lr_hw: LR (height, width).
        device: Where the tensors go.
        nir_scale: The network's ``nir_scale`` (``CSPSR(nir_scale=...)``; 1: the NIR at the LR size).
    """
    gen = torch.Generator().manual_seed(0)
    lq = torch.rand(1, 3, *lr_hw, generator=gen).to(device)
    if not cross_spectral:
        return (lq, )
    nir = torch.rand(1, 1, nir_scale * lr_hw[0], nir_scale * lr_hw[1], generator=gen).to(device)
    return lq, nir, torch.full((1, 1, *lr_hw), 2.0, device=device)


def _inputs_of(model: torch.nn.Module, cross_spectral: bool, lr_hw: Tuple[int, int], device: torch.device) -> tuple:
    """:func:`inputs` for ``model`` (its NIR at the model's ``nir_scale``)."""
    return inputs(cross_spectral, lr_hw, device, getattr(model, 'nir_scale', 1))


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _timed(call, args: tuple, runs: int, device: torch.device) -> List[float]:
    times = []
    for _ in range(runs):
        _sync(device)
        start = time.perf_counter()
        call(*args)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _flops_and_params(model: torch.nn.Module, args: tuple) -> Dict[str, float]:
    from cspsr_arch.archs.fused_dmf import unpadded_convolutions
    with torch.no_grad(), unpadded_convolutions():  # the network's own FLOPs, not the zero filters' of the speed-up
        counter = FlopCounterMode(display=False)
        with counter:
            model(*args)
    return {'params_M': sum(p.numel() for p in model.parameters()) / 1e6, 'gflops': counter.get_total_flops() / 1e9}


def profile(network_opt: Dict[str, object], lr_hw: Tuple[int, int], runs: int,
            device: torch.device, half: Optional[torch.dtype] = None) -> Dict[str, float]:
    """Params, GFLOPs and latency of one network in this process (and peak memory on CUDA).

    Args:
        network_opt: BasicSR ``network_g`` options.
        lr_hw: LR input (height, width).
        runs: Timed forward passes (the median is reported) after one warm-up.
        device: Where to run.
        half: Time it under autocast in this type (``mean_abs_diff``: its output's difference from fp32).
    """
    model, cross_spectral = build(network_opt)
    model = model.to(device).eval()
    args = _inputs_of(model, cross_spectral, lr_hw, device)
    result = _flops_and_params(model, args)
    call = model
    if half is not None:
        call = HalfPrecision(model, half, device)
        result['mean_abs_diff'] = half_difference(model, args, half, device)
    with torch.no_grad():
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        times = _timed(call, args, runs, device)
    result['latency_s'] = statistics.median(times)
    if device.type == 'cuda':
        result['peak_mem_MB'] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def compiled_network(network_opt: Dict[str, object], lr_hw: Tuple[int, int],
                     device: torch.device) -> Optional[Tuple[Callable, tuple, float]]:
    """The ``torch.compile``d network (as ``basicsr infer --compile`` runs it), its inputs and its
    compilation time (the first call); None without a compiler.

    Args:
        network_opt: BasicSR ``network_g`` options.
        lr_hw: LR input (height, width).
        device: Where to run.
    """
    from cspsr_arch.engine.compile import compile_network
    model, cross_spectral = build(network_opt)
    model = model.to(device).eval()
    compiled = compile_network(model, device)
    if compiled is model:
        return None
    args = _inputs_of(model, cross_spectral, lr_hw, device)
    with torch.no_grad():
        compile_s = _timed(compiled, args, 1, device)[0]
    return compiled, args, compile_s


class HalfPrecision:
    """A network called under half-precision autocast (as ``basicsr infer --half`` runs it), its output in fp32.

    Args:
        model: The network.
        dtype: ``torch.bfloat16`` or ``torch.float16``.
        device: Where it runs (the autocast device type).
    """

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype, device: torch.device) -> None:
        self.model, self.dtype, self.device = model, dtype, device

    def __call__(self, *args):
        with torch.autocast(self.device.type, dtype=self.dtype):
            return self.model(*args)


def _first_tensor(out) -> torch.Tensor:
    """The SR image of a network's output (a tensor, or CSPSR's output tuple)."""
    return out if torch.is_tensor(out) else out[0]


def half_difference(model: torch.nn.Module, args: tuple, dtype: torch.dtype, device: torch.device) -> float:
    """Mean absolute difference of the output under half-precision autocast from the fp32 output.

    Args:
        model: The network (eval mode).
        args: Its inputs.
        dtype: The half type.
        device: Where it runs.
    """
    with torch.no_grad():
        full = _first_tensor(model(*args)).float()
        half = _first_tensor(HalfPrecision(model, dtype, device)(*args)).float()
    return float((half - full).abs().mean())


def _cuda_peak_mb(model: torch.nn.Module, args: tuple, device: torch.device) -> float:
    """Peak CUDA memory (MB) of one forward pass: its own weights and inputs plus the peak it allocates,
    whatever other networks of this process hold."""
    own = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()) + list(args))
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        model(*args)
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base + own) / 2**20


def interleaved_latency(entries: Dict[str, Tuple[Callable, tuple]], runs: int,
                        device: torch.device) -> Dict[str, float]:
    """Median latency of each entry, timed in rounds (one call of each entry per round, after a warm-up round).

    Round-robin timing makes the ratios of the entries fair on a machine whose speed drifts (other
    processes, clock changes): each network sees the same conditions, where timing one network's runs
    after the other's would compare different minutes.

    Args:
        entries: Name -> (callable, its arguments).
        runs: Rounds (the median per entry is reported).
        device: Where they run (synchronised around each call on CUDA).
    """
    times: Dict[str, List[float]] = {name: [] for name in entries}
    with torch.no_grad():
        for name, (call, args) in entries.items():
            _timed(call, args, 1, device)
        for _ in range(runs):
            for name, (call, args) in entries.items():
                times[name] += _timed(call, args, 1, device)
    return {name: statistics.median(values) for name, values in times.items()}


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in MB."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f'{field} not in /proc/self/status')


def cpu_peak_memory(network_opt: Dict[str, object], lr_hw: Tuple[int, int]) -> float:
    """Peak RSS growth (MB) of a fresh process that builds the network and runs one forward pass.

    Args:
        network_opt: BasicSR ``network_g`` options.
        lr_hw: LR input (height, width).
    """
    cmd = [sys.executable, '-m', 'cspsr_arch.benchmark.profile', json.dumps(network_opt), f'{lr_hw[1]}x{lr_hw[0]}']
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f'memory measurement of {network_opt} failed:\n{out.stderr[-3000:]}')
    return float(out.stdout.strip().splitlines()[-1])


def _memory_worker(network_opt: Dict[str, object], lr_hw: Tuple[int, int]) -> None:
    model, cross_spectral = build(network_opt)
    args = _inputs_of(model, cross_spectral, lr_hw, torch.device('cpu'))
    Path('/proc/self/clear_refs').write_text('5')  # reset the peak RSS (VmHWM) to the current RSS
    before = _status_mb('VmRSS')
    with torch.no_grad():
        model.eval()(*args)
    print(_status_mb('VmHWM') - before)


def _size(text: str) -> Tuple[int, int]:
    """``'WxH'`` as (height, width)."""
    width, height = (int(v) for v in text.lower().split('x'))
    return height, width


def run_profile(models: List[str], hr: str = '582x429', scale: int = 4, runs: int = 5, device: str = 'cpu',
                also_compiled: bool = False, json_path: Optional[str] = None, half: bool = False) -> dict:
    """Profile the models, print a table (and write JSON with ``json_path``); return the report.

    Args:
        models: Names from :data:`MODELS`.
        hr: HR frame ``WxH``; cropped to a multiple of ``scale``.
        scale: Scale factor.
        runs: Timed forward passes (the median is reported).
        device: ``'cpu'`` or ``'cuda'``.
        also_compiled: Also time the ``torch.compile`` (inductor) networks: one more row per model.
        json_path: Also write the figures to this JSON file.
        half: Also time each network under half-precision autocast (the type of ``basicsr infer --half``;
            :class:`~cspsr_arch.errors.CSPSRInputError` where the device has none): one more row per model.
    """
    from cspsr_arch.archs.precision import half_dtype
    hr_h, hr_w = _size(hr)
    lr_hw = (hr_h // scale, hr_w // scale)
    device = torch.device(device)
    dtype = half_dtype(device) if half else None
    report = {'hr': f'{lr_hw[1] * scale}x{lr_hw[0] * scale}', 'lr': f'{lr_hw[1]}x{lr_hw[0]}',
              'scale': scale, 'device': str(device), 'threads': torch.get_num_threads(), 'models': {}}
    entries: Dict[str, Tuple[Callable, tuple]] = {}
    for name in models:
        network_opt = network_options(name, scale)
        model, cross_spectral = build(network_opt)
        model = model.to(device).eval()
        args = _inputs_of(model, cross_spectral, lr_hw, device)
        report['models'][name] = _flops_and_params(model, args)
        entries[name] = (model, args)
        report['models'][name]['peak_mem_MB'] = (cpu_peak_memory(network_opt, lr_hw) if device.type == 'cpu' else
                                                 _cuda_peak_mb(model, args, device))
        if also_compiled:
            compiled = compiled_network(network_opt, lr_hw, device)
            if compiled is not None:
                entries[name + ' (compiled)'] = compiled[:2]
                report.setdefault('compiled', {})[name] = {'compile_s': compiled[2]}
        if dtype is not None:
            entries[name + ' (half)'] = (HalfPrecision(model, dtype, device), args)
            report.setdefault('half', {})[name] = {'dtype': str(dtype).replace('torch.', ''),
                                                   'mean_abs_diff': half_difference(model, args, dtype, device)}
    latency = interleaved_latency(entries, runs, device)
    for name in models:
        report['models'][name]['latency_s'] = latency[name]
        if name in report.get('compiled', {}):
            report['compiled'][name]['latency_s'] = latency[name + ' (compiled)']
        if name in report.get('half', {}):
            report['half'][name]['latency_s'] = latency[name + ' (half)']
    print(f"HR {report['hr']} (LR {report['lr']}, x{scale}) on {device}, {report['threads']} threads, "
          f'median of {runs} runs')
    print(f"{'model':<18} {'params (M)':>10} {'GFLOPs':>8} {'latency (s)':>12} {'peak mem (MB)':>14}")
    for name, f in report['models'].items():
        print(f"{name:<18} {f['params_M']:>10.3f} {f['gflops']:>8.1f} {f['latency_s']:>12.3f} {f['peak_mem_MB']:>14.0f}")
    for name, f in report.get('compiled', {}).items():
        eager = report['models'][name]
        print(f"{name + ' (compiled)':<18} {eager['params_M']:>10.3f} {eager['gflops']:>8.1f} {f['latency_s']:>12.3f} "
              f"{'-':>14}  (compiling: {f['compile_s']:.0f} s)")
    for name, f in report.get('half', {}).items():
        eager = report['models'][name]
        print(f"{name + ' (' + f['dtype'] + ')':<18} {eager['params_M']:>10.3f} {eager['gflops']:>8.1f} "
              f"{f['latency_s']:>12.3f} {'-':>14}  (x{f['latency_s'] / eager['latency_s']:.2f} of fp32; output "
              f"off by {f['mean_abs_diff']:.4f} on average)")
    if 'CSPSR' in report.get('half', {}) and 'EDSR' in report.get('half', {}):
        print(f"CSPSR / EDSR latency in {report['half']['CSPSR']['dtype']}: "
              f"{report['half']['CSPSR']['latency_s'] / report['half']['EDSR']['latency_s']:.2f}")
    if 'CSPSR' in report['models'] and 'EDSR' in report['models']:
        edsr = report['models']['EDSR']['latency_s']
        ratios = [f"eager {report['models']['CSPSR']['latency_s'] / edsr:.2f}"]
        if 'CSPSR' in report.get('compiled', {}):
            ratios.append(f"compiled {report['compiled']['CSPSR']['latency_s'] / edsr:.2f}")
        print(f"CSPSR / eager EDSR latency: {', '.join(ratios)}")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2) + '\n')
    return report


if __name__ == '__main__':  # the fresh process of cpu_peak_memory
    _memory_worker(json.loads(sys.argv[1]), _size(sys.argv[2]))
