"""Helpers shared by CSPSRModel and CrossSpectralStereoModel: loading and checking the stereo network."""
from typing import Mapping, Optional

from torch import nn

from cspsr_arch.engine.checkpoint import read_state_dict
from cspsr_arch.errors import CSPSRInputError


def load_stereo_weights(net: nn.Module, path: str, param_key: Optional[str] = 'params', strict: bool = True) -> None:
    """Load a ``CrossSpectralStereoNet`` checkpoint into ``net``.

    Accepts what ``CrossSpectralStereoModel`` saves (``{'params': state}``) and full CSPSR checkpoints
    (whose stereo weights are under ``cvm_net.``), read by :func:`cspsr_arch.engine.checkpoint.read_state_dict`
    (wrapper prefixes such as DataParallel's ``module.`` are dropped there).

    Args:
        net (nn.Module): The stereo network to fill.
        path (str): Checkpoint file (``.pth``).
        param_key (str | None): Key of the state dict in the file (``params`` or ``params_ema``);
            ``params_ema`` falls back to ``params``; None: ``params_ema`` or ``params`` when the file has
            them, else the file is the state dict. Default: ``'params'``.
        strict (bool): Require exactly the network's keys. Default: True.
    """
    state, _ = read_state_dict(path, param_key, ema_falls_back=True, what='Disparity network checkpoint',
                               hint='Set path:pretrain_network_disp (and path:param_key_disp) to the checkpoint of '
                                    'a disparity network: train one with `basicsr train -opt '
                                    'options/train_disparity_x4.yml` and point the option at '
                                    'experiments/<name>/models/net_g_latest.pth.')
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
