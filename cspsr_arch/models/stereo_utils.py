"""Helpers shared by CSPSRModel and CrossSpectralStereoModel: loading and checking the stereo network."""
from typing import Mapping, Optional

import torch
from torch import nn

from cspsr_arch.errors import CSPSRInputError


def load_stereo_weights(net: nn.Module, path: str, param_key: Optional[str] = 'params', strict: bool = True) -> None:
    """Load a ``CrossSpectralStereoNet`` checkpoint into ``net``.

    Accepts what ``CrossSpectralStereoModel`` saves (``{'params': state}``) and full CSPSR checkpoints
    (whose stereo weights are under ``cvm_net.``), with or without DataParallel's ``module.`` prefix.

    Args:
        net (nn.Module): The stereo network to fill.
        path (str): Checkpoint file (``.pth``).
        param_key (str | None): Key of the state dict in the file (``params`` or ``params_ema``);
            ``params_ema`` falls back to ``params``; None: the file is the state dict. Default: ``'params'``.
        strict (bool): Require exactly the network's keys. Default: True.
    """
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise CSPSRInputError(f'Disparity network checkpoint not found: {path} (path:pretrain_network_disp). '
                              'Train one with `basicsr train -opt options/train_disparity_x4.yml` and point the '
                              'option at experiments/<name>/models/net_g_latest.pth.') from None
    except Exception as err:
        raise CSPSRInputError(f'Cannot read the disparity network checkpoint {path}: {err}') from None
    if param_key is not None and isinstance(state, Mapping):
        if param_key not in state and param_key == 'params_ema' and 'params' in state:
            param_key = 'params'
        if param_key not in state:
            raise CSPSRInputError(f"{path} has no '{param_key}' entry (it has {sorted(state)[:5]}); set "
                                  'path:param_key_disp to one of them.')
        state = state[param_key]
    state = {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state.items()}
    if any(k.startswith('cvm_net.') for k in state):
        state = {k[len('cvm_net.'):]: v for k, v in state.items() if k.startswith('cvm_net.')}
    own = net.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if mismatched or (strict and (missing or unexpected)):
        detail = '; '.join(f'{name}: {keys[:3]}{" ..." if len(keys) > 3 else ""}'
                           for name, keys in (('missing', missing), ('unexpected', unexpected),
                                              ('shape differs', mismatched)) if keys)
        raise CSPSRInputError(f'{path} is not a checkpoint of this disparity network ({detail}). Build the network '
                              'with the options it was trained with (network_g: min_disp, max_disp) or set '
                              'path:strict_load_disp: false to load the matching part.')
    net.load_state_dict(state, strict=False)


def check_flip_geometry(opt: Mapping, min_disp: int) -> None:
    """Refuse horizontal flips when a learned disparity network searches non-negative disparities only.

    The data set negates the disparity of a horizontally flipped pair (the views are not swapped, the
    spectra differ), so the flipped pair has negative disparities the network cannot represent.
    """
    train_set = (opt.get('datasets') or {}).get('train') or {}
    if train_set.get('use_hflip') and min_disp >= 0:
        raise CSPSRInputError(
            'datasets:train:use_hflip is true, but the learned disparity network searches disparities '
            f'{min_disp}..max_disp only and a horizontal flip makes them negative. Set use_hflip: false '
            '(vertical flips keep the geometry), or give network_g a negative min_disp (e.g. -max_disp).')


def freeze(net: nn.Module) -> None:
    """Stop training ``net``: no gradients, so the optimizer leaves it alone."""
    for param in net.parameters():
        param.requires_grad_(False)
