"""Build a trained network for inference from its options file and checkpoint, with clear errors.

The network is a CSPSR (VIS and NIR in), or a VIS-only single-image SR arch of BasicSR's registry (EDSR,
RCAN, HAT, ...; wrapped by :class:`~cspsr_arch.infer.vis_only.VisOnlySR`). The options file is the one
that trained (or tests) the model: its ``network_g`` is read with
:func:`cspsr_arch.engine.options.load_options` (``base`` files resolved) and checked like ``basicsr train``
checks it (unknown or misspelled keys are errors). The checkpoint is what BasicSR's ``SRModel`` saves
(``{'params': state_dict, 'params_ema': state_dict}``) or a bare state dict. A checkpoint that does not
fit the network (another architecture, scale or size) is reported in one sentence that says what the
checkpoint looks like, not as a list of state-dict keys.
"""
import math
import re
from collections.abc import Mapping
from typing import Optional

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.engine.checkpoint import read_state_dict
from cspsr_arch.engine.options import check_options, load_options
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.infer.vis_only import NOT_SR_ARCHS, InferenceNet, VisOnlySR, probe_scale, reads_nir


def network_options(opt_path: str) -> dict:
    """The checked ``network_g`` section of an options file (train or test options).

    Args:
        opt_path (str): Options YAML file.

    Returns:
        dict: ``network_g``, with ``type``: ``CSPSR`` or a VIS-only SR arch (checked when it is built).
    """
    opt = load_options(opt_path)
    check_options({**opt, 'datasets': {}})  # keys of every section; the data sets are not needed here
    net_opt = dict(opt.get('network_g') or {})
    if not net_opt:
        raise CSPSRInputError(f'{opt_path} has no network_g section; pass the options file the model was trained with.')
    if net_opt['type'] in NOT_SR_ARCHS:
        raise CSPSRInputError(f"{opt_path}: network_g:type is {net_opt['type']}; basicsr infer runs super-resolution "
                              f"models (CSPSR, or VIS-only ones such as EDSR), and {NOT_SR_ARCHS[net_opt['type']]}.")
    return net_opt


def _cspsr_summary(state: Mapping[str, Tensor]) -> Optional[str]:
    """``'x4, num_feat 64, num_dmf 15, cvm learned'`` (``, nir_scale 4`` when above 1) for a CSPSR state dict, None
    for anything else."""
    head, first = state.get('head_vis.0.weight'), state.get('branch_vis.0.weight')
    if head is None or first is None:
        return None
    dmfs = {int(m.group(1)) for m in (re.match(r'dmfs\.(\d+)\.', k) for k in state) if m}
    blocks = {int(m.group(1)) for m in (re.match(r'body\.(\d+)\.', k) for k in state) if m}
    root = math.isqrt(head.shape[0] // 3)
    parts = [f'x{root}' if root * root * 3 == head.shape[0] else f'{head.shape[0]} head channels',
             f'num_feat {first.shape[0]}', f'num_dmf {len(dmfs or blocks)}',
             'cvm learned' if any(k.startswith('cvm_net.') for k in state) else 'no learned cvm']
    if not dmfs:
        parts.append('single branch')
    guide = state.get('branch_nir.0.weight')  # NIR + mask, pixel-unshuffled: 2 * nir_scale**2 channels
    guide_ch = guide.shape[1] if guide is not None else first.shape[1] - 3  # concat: after the 3 VIS channels
    nir_scale = math.isqrt(max(guide_ch, 0) // 2)
    if nir_scale > 1 and 2 * nir_scale * nir_scale == guide_ch:
        parts.append(f'nir_scale {nir_scale}')
    return ', '.join(parts)


def _summary(arch: str, state: Mapping[str, Tensor]) -> str:
    """What the options build, in a few words: CSPSR's sizes, or another arch's parameter count."""
    summary = _cspsr_summary(state) if arch == 'CSPSR' else None
    if summary is not None:
        return summary
    return f'{sum(v.numel() for v in state.values()) / 1e6:.3f} M parameters in {len(state)} tensors'


def describe_checkpoint(state: Mapping[str, Tensor], expected: str = 'CSPSR') -> str:
    """A short description of the network a state dict belongs to (architecture, scale, sizes).

    Args:
        state (Mapping[str, Tensor]): The checkpoint's state dict.
        expected (str): The arch the options build (``network_g:type``), named when the file is none of
            the project's own networks.
    """
    summary = _cspsr_summary(state)
    if summary is not None:
        return f'a CSPSR checkpoint ({summary})'
    if any(k.startswith('aggregation.') for k in state):
        return 'a CrossSpectralStereoNet (disparity only) checkpoint'
    start = f"its weights start with {', '.join(list(state)[:2])}"
    if expected == 'CSPSR':
        return f'not a CSPSR checkpoint ({start})'
    return f"a checkpoint of {_summary('', state)} ({start})"


def check_fit(net: nn.Module, state: Mapping[str, Tensor], model_path: str, opt_path: str,
              arch: str = 'CSPSR') -> None:
    """Raise a one-sentence :class:`CSPSRInputError` when ``state`` does not fit ``net``.

    Args:
        net (nn.Module): The network the options build.
        state (Mapping[str, Tensor]): The checkpoint's state dict.
        model_path (str): The checkpoint file, for the message.
        opt_path (str): The options file, for the message.
        arch (str): ``network_g:type`` (CSPSR's sizes are spelled out, other archs' parameter counts).
    """
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and own[k].shape != state[k].shape]
    if not (missing or unexpected or reshaped):
        return
    counts = ', '.join(f'{len(keys)} {what}' for keys, what in ((missing, 'missing'), (unexpected, 'unexpected'),
                                                               (reshaped, 'of another shape')) if keys)
    summary = _summary(arch, own)
    if arch != 'CSPSR' or summary == _cspsr_summary(state):  # same sizes: name one differing layer
        counts += f', first: {(reshaped or missing or unexpected)[0]}'
    built = 'a CSPSR' if arch == 'CSPSR' else f'network_g:type {arch}'
    raise CSPSRInputError(f'{model_path} does not fit network_g of {opt_path}: the options build {built} '
                          f'({summary}), the file is {describe_checkpoint(state, arch)}; weights: {counts}. '
                          'Pass the options file the checkpoint was trained with (-opt), or the checkpoint of this '
                          'network (--model).')


def load_inference_model(opt_path: str, model_path: Optional[str] = None, param_key: Optional[str] = None,
                         scale: Optional[int] = None, device: Optional[torch.device] = None) -> InferenceNet:
    """Build ``network_g`` of ``opt_path``, load its weights and put it in eval mode on ``device``.

    Args:
        opt_path (str): Options file that built the model.
        model_path (str | None): Checkpoint; None: ``path:pretrain_network_g`` of the options.
        param_key (str | None): ``params`` or ``params_ema``; None: ``params_ema`` when the checkpoint has it
            (see :func:`cspsr_arch.engine.checkpoint.read_state_dict`).
        scale (int | None): Scale the caller asks for; an error unless it is the network's.
        device (torch.device | None): Default: CPU.

    Returns:
        CSPSR | VisOnlySR: The network, in eval mode, without gradients; a VIS-only arch wrapped in
        :class:`~cspsr_arch.infer.vis_only.VisOnlySR` (its scale measured by
        :func:`~cspsr_arch.infer.vis_only.probe_scale`).
    """
    net_opt = network_options(opt_path)
    arch = net_opt.pop('type')
    if model_path is None:
        model_path = (load_options(opt_path).get('path') or {}).get('pretrain_network_g')
        if not model_path:
            raise CSPSRInputError(f'No checkpoint: pass --model, or set path:pretrain_network_g in {opt_path}.')
    try:
        net = ARCH_REGISTRY.get(arch)(**net_opt)
    except (TypeError, ValueError, AssertionError) as err:
        raise CSPSRInputError(f'{opt_path}: network_g cannot be built: {err}') from None
    state, _ = read_state_dict(model_path, param_key, hint='Point --model (or path:pretrain_network_g) at '
                               'experiments/<name>/models/net_g_<iter>.pth.')
    check_fit(net, state, model_path, opt_path, arch)
    net.load_state_dict(state, strict=True)
    net.eval().requires_grad_(False)
    net = net.to(device or torch.device('cpu'))
    if not reads_nir(arch):
        net = VisOnlySR(net, probe_scale(net, arch, opt_path), arch).eval()
    if scale is not None and scale != net.upscale:
        raise CSPSRInputError(f'--scale {scale}, but {model_path} was trained for x{net.upscale} (network_g of '
                              f'{opt_path}); a network works at its training scale only. Use --scale {net.upscale}, '
                              f'or a checkpoint trained at x{scale}.')
    return net
