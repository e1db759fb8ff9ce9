#!/usr/bin/env python
"""Profile SR networks on one frame: parameters, GFLOPs, latency and peak memory.

Default: the paper's CSPSR (``CSPSR()``) beside BasicSR's EDSR baseline (64 features, 16 blocks, x4),
on a 582x429 HR frame (LR 145x107 at x4; HR cropped to 580x428), on the CPU.

* **GFLOPs**: ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass (a multiply-add
  counts 2 FLOPs; element-wise operations such as the dynamic filtering are not counted by it).
* **Latency**: median of ``--runs`` timed forward passes after one warm-up, all models in this process.
* **Peak memory**: on CUDA, ``torch.cuda.max_memory_allocated``; on the CPU (Linux), the growth of the
  peak resident set size during one forward pass in a fresh process that built the model (the peak is
  reset through ``/proc/self/clear_refs`` just before it).

Usage: ``python tools/profile_model.py [--models CSPSR EDSR] [--hr 582x429] [--scale 4] [--runs 5]
[--device cpu] [--json results/profile.json]``.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode


def build(name: str, scale: int) -> Tuple[torch.nn.Module, bool]:
    """The model and whether it takes the NIR stream (``lq, lq_nir, disp``) besides the VIS image."""
    import cspsr_arch  # noqa: F401  (registers CSPSR)
    from basicsr.utils.registry import ARCH_REGISTRY
    if name == 'CSPSR':
        return ARCH_REGISTRY.get('CSPSR')(upscale=scale), True
    if name == 'EDSR':
        return ARCH_REGISTRY.get('EDSR')(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=scale,
                                         res_scale=1, img_range=255.), False
    raise ValueError(f'unknown model {name!r}: choose CSPSR or EDSR')


def inputs(cross_spectral: bool, lr_hw: Tuple[int, int], device: torch.device) -> tuple:
    """Random inputs of the LR size (a constant 2-pixel disparity for CSPSR)."""
    gen = torch.Generator().manual_seed(0)
    lq = torch.rand(1, 3, *lr_hw, generator=gen).to(device)
    if not cross_spectral:
        return (lq, )
    return lq, torch.rand(1, 1, *lr_hw, generator=gen).to(device), torch.full((1, 1, *lr_hw), 2.0, device=device)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def profile(name: str, scale: int, lr_hw: Tuple[int, int], runs: int, device: torch.device) -> Dict[str, float]:
    """Params, GFLOPs and latency of one model in this process (and peak memory on CUDA)."""
    model, cross_spectral = build(name, scale)
    model = model.to(device).eval()
    args = inputs(cross_spectral, lr_hw, device)
    result = {'params_M': sum(p.numel() for p in model.parameters()) / 1e6}
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(*args)
        result['gflops'] = counter.get_total_flops() / 1e9
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(runs):
            _sync(device)
            start = time.perf_counter()
            model(*args)
            _sync(device)
            times.append(time.perf_counter() - start)
    result['latency_s'] = statistics.median(times)
    if device.type == 'cuda':
        result['peak_mem_MB'] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in MB."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f'{field} not in /proc/self/status')


def cpu_peak_memory(name: str, scale: int, lr_hw: Tuple[int, int]) -> float:
    """Peak RSS growth (MB) of a fresh process that builds ``name`` and runs one forward pass."""
    cmd = [sys.executable, __file__, '--memory-worker', name, '--scale', str(scale), '--lr', f'{lr_hw[1]}x{lr_hw[0]}']
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _memory_worker(name: str, scale: int, lr_hw: Tuple[int, int]) -> None:
    model, cross_spectral = build(name, scale)
    args = inputs(cross_spectral, lr_hw, torch.device('cpu'))
    Path('/proc/self/clear_refs').write_text('5')  # reset the peak RSS (VmHWM) to the current RSS
    before = _status_mb('VmRSS')
    with torch.no_grad():
        model.eval()(*args)
    print(_status_mb('VmHWM') - before)


def _size(text: str) -> Tuple[int, int]:
    width, height = (int(v) for v in text.lower().split('x'))
    return height, width


def main(argv: Optional[List[str]] = None) -> int:
    """Profile the models and print a table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=['CSPSR', 'EDSR'], choices=['CSPSR', 'EDSR'])
    parser.add_argument('--hr', default='582x429', help='HR frame WxH (cropped to a multiple of the scale)')
    parser.add_argument('--scale', type=int, default=4, choices=[2, 3, 4])
    parser.add_argument('--runs', type=int, default=5, help='timed forward passes (median reported)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--json', default=None, help='also write the figures to this JSON file')
    parser.add_argument('--memory-worker', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--lr', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        _memory_worker(args.memory_worker, args.scale, _size(args.lr))
        return 0
    hr_h, hr_w = _size(args.hr)
    lr_hw = (hr_h // args.scale, hr_w // args.scale)
    device = torch.device(args.device)
    report = {'hr': f'{lr_hw[1] * args.scale}x{lr_hw[0] * args.scale}', 'lr': f'{lr_hw[1]}x{lr_hw[0]}',
              'scale': args.scale, 'device': str(device), 'threads': torch.get_num_threads(), 'models': {}}
    for name in args.models:
        figures = profile(name, args.scale, lr_hw, args.runs, device)
        if device.type == 'cpu':
            figures['peak_mem_MB'] = cpu_peak_memory(name, args.scale, lr_hw)
        report['models'][name] = figures
    print(f"HR {report['hr']} (LR {report['lr']}, x{args.scale}) on {device}, {report['threads']} threads, "
          f'median of {args.runs} runs')
    print(f"{'model':<8} {'params (M)':>10} {'GFLOPs':>8} {'latency (s)':>12} {'peak mem (MB)':>14}")
    for name, f in report['models'].items():
        print(f"{name:<8} {f['params_M']:>10.3f} {f['gflops']:>8.1f} {f['latency_s']:>12.3f} {f['peak_mem_MB']:>14.0f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
