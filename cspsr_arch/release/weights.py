"""Released weights: a benchmark run's final checkpoint as a small file a user runs with ``basicsr infer``.

A benchmark run leaves ``<benchmark>/experiments/<run>/models/net_g_latest.pth`` (BasicSR's
``{'params': ...}``, float32) and its complete training options ``<benchmark>/options/<run>.yml`` (data
paths of the machine that trained it, optimizer, losses). :func:`release_weights` writes

* ``<out>.pth``: ``{'params': state_dict}`` of the weights the benchmark scored (``params``; its runs train
  without EMA), floating-point tensors as float32, nothing else (no optimizer, no training state);
* ``<out>.yml``: the options ``basicsr infer`` reads, ``scale`` and ``network_g`` (the option checker
  rejects other keys' misspellings, and a user's machine has none of the training paths);

then loads the pair back the way ``basicsr infer`` does (strictly) and checks every tensor against the
checkpoint, so a released file is never silently different from what the benchmark scored.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict

import torch
import yaml
from torch import Tensor

from cspsr_arch.errors import CSPSRInputError


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def released_state(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Floating-point tensors as contiguous float32 copies (integer buffers, e.g. BatchNorm's
    ``num_batches_tracked``, keep their type: a strict load needs them)."""
    return {k: (v.detach().float() if v.is_floating_point() else v.detach()).contiguous().clone()
            for k, v in state.items()}


def released_options(run_options: Path) -> dict:
    """``scale`` and ``network_g`` of a run's training options (``base`` files resolved).

    Args:
        run_options: The run's options file (``<benchmark>/options/<run>.yml``).
    """
    from cspsr_arch.engine.options import load_options, plain
    opt = load_options(str(run_options))
    if not opt.get('network_g'):
        raise CSPSRInputError(f'{run_options} has no network_g: pass the options file of a benchmark run.')
    return {'scale': int(opt['scale']), 'network_g': plain(opt['network_g'])}


def release_weights(benchmark: Path, run: str, out: Path, note: str = '') -> dict:
    """Write ``<out>.pth`` and ``<out>.yml`` from a benchmark run and check them (see the module docstring).

    Args:
        benchmark: The benchmark folder (``results/benchmark/<name>``).
        run: Run name (``CSPSR_x4_camera``, ``EDSR_x4_camera``).
        out: Output path without suffix (``weights/CSPSR_country_camera_x4``).
        note: A comment line for the head of the options file (what the weights are).

    Returns:
        dict: ``weights``, ``options``, ``sha256``, ``bytes``, ``params`` (parameter count), ``run``, ``source``
        (the checkpoint, relative to the benchmarks' folder) and ``source_sha256``.
    """
    from cspsr_arch.engine.checkpoint import atomic_torch_save, read_state_dict
    from cspsr_arch.infer.model import load_inference_model
    from cspsr_arch.infer.vis_only import VisOnlySR
    checkpoint = benchmark / 'experiments' / run / 'models' / 'net_g_latest.pth'
    run_options = benchmark / 'options' / f'{run}.yml'
    if not run_options.is_file():
        runs = sorted(p.stem for p in (benchmark / 'options').glob('*.yml')) if (benchmark / 'options').is_dir() else []
        raise CSPSRInputError(f'{run_options} does not exist: runs of {benchmark}: {", ".join(runs) or "none"}.')
    state, _ = read_state_dict(str(checkpoint), 'params', what='Final checkpoint of the run',
                               hint='Wait for the run to finish (tools/benchmark.py), or name a finished run.')
    state = released_state(state)
    out.parent.mkdir(parents=True, exist_ok=True)
    weights, options = out.with_suffix('.pth'), out.with_suffix('.yml')
    header = (f'# {note}\n' if note else '') + (f'# basicsr infer options of {weights.name} (release of run {run}; '
                                                'network_g as it trained)\n')
    options.write_text(header + yaml.safe_dump(released_options(run_options), sort_keys=False))
    atomic_torch_save({'params': state}, str(weights))
    os.chmod(weights, 0o644)  # the temporary file it was written as is private to its owner
    net = load_inference_model(str(options), str(weights), 'params')
    loaded = (net.net if isinstance(net, VisOnlySR) else net).state_dict()
    for key, value in state.items():
        if not torch.equal(loaded[key].cpu(), value):
            raise RuntimeError(f'{weights}: {key} differs from {checkpoint} after loading; nothing should change it.')
    params = sum(p.numel() for p in net.parameters())
    return {'weights': str(weights), 'options': str(options), 'sha256': sha256(weights),
            'bytes': weights.stat().st_size, 'params': params, 'run': run,
            'source': f'{benchmark.name}/experiments/{run}/models/net_g_latest.pth', 'source_sha256': sha256(checkpoint)}
