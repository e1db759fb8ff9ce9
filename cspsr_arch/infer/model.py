"""Build a trained CSPSR for inference from its options file and checkpoint, with clear errors.

The options file is the one that trained (or tests) the model: its ``network_g`` is read with
:func:`cspsr_arch.engine.options.load_options` (``base`` files resolved) and checked like ``basicsr train``
checks it (unknown or misspelled keys are errors). The checkpoint is what BasicSR's ``SRModel`` saves
(``{'params': state_dict, 'params_ema': state_dict}``) or a bare state dict. A checkpoint that does not
fit the network (another architecture, scale or size) is reported in one sentence that says what the
checkpoint looks like, not as a list of state-dict keys.
"""
import math
import re
from collections.abc import Mapping
from typing import Dict, Optional, Tuple

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.engine.options import check_options, load_options

PARAM_KEYS = ('params_ema', 'params')


def network_options(opt_path: str) -> dict:
    """The checked ``network_g`` section of an options file (train or test options).

    Args:
        opt_path (str): Options YAML file.

    Returns:
        dict: ``network_g`` without ``type``.
    """
    opt = load_options(opt_path)
    check_options({**opt, 'datasets': {}})  # keys of every section; the data sets are not needed here
    net_opt = dict(opt.get('network_g') or {})
    if not net_opt:
        raise CSPSRInputError(f'{opt_path} has no network_g section; pass the options file the model was trained with.')
    if net_opt.get('type') != 'CSPSR':
        raise CSPSRInputError(f"{opt_path}: network_g:type is {net_opt.get('type')!r}; basicsr infer runs CSPSR "
                              'super-resolution models (a CrossSpectralStereoNet only predicts disparity).')
    del net_opt['type']
    return net_opt


def read_checkpoint(model_path: str, param_key: Optional[str] = None) -> Tuple[Dict[str, Tensor], str]:
    """The state dict in a checkpoint file, and the key it was under.

    Args:
        model_path (str): ``.pth`` file.
        param_key (str | None): ``params`` or ``params_ema``; None: ``params_ema`` when the file has it
            (the EMA weights BasicSR validates with), else ``params``, else the file itself.

    Returns:
        tuple[dict, str]: State dict (without DataParallel's ``module.`` or ``torch.compile``'s ``_orig_mod.``
        prefix) and the key used.
    """
    try:
        ckpt = torch.load(model_path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise CSPSRInputError(f'Checkpoint not found: {model_path}. Point --model (or path:pretrain_network_g) at '
                              'experiments/<name>/models/net_g_<iter>.pth.') from None
    except Exception as err:
        raise CSPSRInputError(f'{model_path} is not a readable PyTorch checkpoint (corrupt or truncated file?): '
                              f'{str(err).splitlines()[0][:200]}') from None
    if not isinstance(ckpt, Mapping):
        raise CSPSRInputError(f'{model_path} holds a {type(ckpt).__name__}, not a state dict.')
    if param_key is not None:
        if param_key not in ckpt:
            raise CSPSRInputError(f"{model_path} has no '{param_key}' entry; it has {', '.join(map(str, ckpt))[:200]}.")
        state, used = ckpt[param_key], param_key
    else:
        used = next((k for k in PARAM_KEYS if k in ckpt), '')
        state = ckpt[used] if used else ckpt
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CSPSRInputError(f'{model_path} is not a network checkpoint (no params / params_ema state dict).')
    return {_bare_key(k): v for k, v in state.items()}, used


def _bare_key(key: str) -> str:
    """A state-dict key without the prefixes of wrappers (``module.``, ``_orig_mod.`` of a compiled module)."""
    for prefix in ('module.', '_orig_mod.'):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def _cspsr_summary(state: Mapping[str, Tensor]) -> Optional[str]:
    """``'x4, num_feat 64, num_dmf 15, cvm learned'`` for a CSPSR state dict, None for anything else."""
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
    return ', '.join(parts)


def describe_checkpoint(state: Mapping[str, Tensor]) -> str:
    """A short description of the network a state dict belongs to (architecture, scale, sizes)."""
    summary = _cspsr_summary(state)
    if summary is not None:
        return f'a CSPSR checkpoint ({summary})'
    if any(k.startswith('aggregation.') for k in state):
        return 'a CrossSpectralStereoNet (disparity only) checkpoint'
    return f"not a CSPSR checkpoint (its weights start with {', '.join(list(state)[:2])})"


def check_fit(net: CSPSR, state: Mapping[str, Tensor], model_path: str, opt_path: str) -> None:
    """Raise a one-sentence :class:`CSPSRInputError` when ``state`` does not fit ``net``."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and own[k].shape != state[k].shape]
    if not (missing or unexpected or reshaped):
        return
    counts = ', '.join(f'{len(keys)} {what}' for keys, what in ((missing, 'missing'), (unexpected, 'unexpected'),
                                                               (reshaped, 'of another shape')) if keys)
    summary = _cspsr_summary(own)
    if summary == _cspsr_summary(state):  # same sizes: name one differing layer (e.g. an older version of CSPSR)
        counts += f', first: {(reshaped or missing or unexpected)[0]}'
    raise CSPSRInputError(f'{model_path} does not fit network_g of {opt_path}: the options build a CSPSR '
                          f'({summary}), the file is {describe_checkpoint(state)}; weights: {counts}. '
                          'Pass the options file the checkpoint was trained with (-opt), or the checkpoint of this '
                          'network (--model).')


def load_inference_model(opt_path: str, model_path: Optional[str] = None, param_key: Optional[str] = None,
                         scale: Optional[int] = None, device: Optional[torch.device] = None) -> CSPSR:
    """Build ``network_g`` of ``opt_path``, load its weights and put it in eval mode on ``device``.

    Args:
        opt_path (str): Options file that built the model.
        model_path (str | None): Checkpoint; None: ``path:pretrain_network_g`` of the options.
        param_key (str | None): See :func:`read_checkpoint`.
        scale (int | None): Scale the caller asks for; an error unless it is the network's.
        device (torch.device | None): Default: CPU.

    Returns:
        CSPSR: The network, in eval mode, without gradients.
    """
    net_opt = network_options(opt_path)
    if model_path is None:
        model_path = (load_options(opt_path).get('path') or {}).get('pretrain_network_g')
        if not model_path:
            raise CSPSRInputError(f'No checkpoint: pass --model, or set path:pretrain_network_g in {opt_path}.')
    try:
        net = ARCH_REGISTRY.get('CSPSR')(**net_opt)
    except (TypeError, ValueError) as err:
        raise CSPSRInputError(f'{opt_path}: network_g cannot be built: {err}') from None
    state, _ = read_checkpoint(model_path, param_key)
    check_fit(net, state, model_path, opt_path)
    if scale is not None and scale != net.upscale:
        raise CSPSRInputError(f'--scale {scale}, but {model_path} was trained for x{net.upscale} (network_g:upscale '
                              f'{net.upscale} in {opt_path}); a CSPSR works at its training scale only. Use --scale '
                              f'{net.upscale}, or a checkpoint trained at x{scale}.')
    net.load_state_dict(state, strict=True)
    net.eval().requires_grad_(False)
    return net.to(device or torch.device('cpu'))
