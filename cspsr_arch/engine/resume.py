"""Device-agnostic replacement for ``basicsr.train.load_resume_state``.

BasicSR's version maps the state onto ``torch.cuda.current_device()``, which fails on a machine
without a GPU, and looks for auto-resume states in ``./experiments`` whatever ``experiments_root`` says.
With ``--auto_resume`` this one also skips, with a warning, a newest state that cannot be read or whose
network file is missing (a run killed while BasicSR wrote them non-atomically) and takes the one before;
when states exist but none can be used, it stops with an error instead of starting from scratch.
"""
import os
import re
import warnings
from os import path as osp
from typing import List, Optional

import torch
from basicsr.utils.misc import check_resume

from cspsr_arch.errors import CSPSRInputError


def states_newest_first(folder: str) -> List[str]:
    """Paths of the ``<iter>.state`` files in ``folder``, highest iteration first (empty if none)."""
    if not osp.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        match = re.fullmatch(r'(\d+)\.state', name)
        if match:
            found.append((int(match.group(1)), name))
    return [osp.join(folder, name) for _, name in sorted(found, reverse=True)]


def latest_state(folder: str) -> Optional[str]:
    """Path of the ``<iter>.state`` file with the highest iteration in ``folder`` (None if there is none)."""
    states = states_newest_first(folder)
    return states[0] if states else None


def _networks_of(opt: dict, state_path: str) -> List[str]:
    """The network files BasicSR's ``check_resume`` will load for ``<iter>.state``."""
    it = osp.splitext(osp.basename(state_path))[0]
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [osp.join(opt['path']['models'], f"net_{key[len('network_'):]}_{it}.pth") for key in opt
            if key.startswith('network_') and key not in ignored]


def _load(state_path: str, device: torch.device) -> dict:
    # optimizer and scheduler states are pickled objects, so weights_only cannot be used here
    return torch.load(state_path, map_location=device, weights_only=False)


def load_resume_state(opt: dict) -> Optional[dict]:
    """Load the training state to resume from, onto the device the options ask for.

    With ``--auto_resume`` the newest state under ``opt['path']['training_states']`` is used (and
    recorded in ``opt['path']['resume_state']``); otherwise ``path:resume_state`` if set.

    Args:
        opt (dict): Parsed options.

    Returns:
        dict | None: The state (``iter``, ``epoch``, ``optimizers``, ``schedulers``) or None.
    """
    if opt['num_gpu'] != 0 and torch.cuda.is_available():
        device = torch.device('cuda', torch.cuda.current_device())
    else:
        device = torch.device('cpu')
    if opt['auto_resume']:
        folder = opt['path']['training_states']
        states = states_newest_first(folder)
        for state_path in states:
            missing = [p for p in _networks_of(opt, state_path) if not osp.isfile(p)]
            try:
                state = None if missing else _load(state_path, device)
            except Exception as err:  # a truncated or otherwise unreadable file
                warnings.warn(f'Skipping {state_path} for --auto_resume: it cannot be read ({err}).')
                continue
            if state is None:
                warnings.warn(f'Skipping {state_path} for --auto_resume: {missing[0]} is missing.')
                continue
            opt['path']['resume_state'] = state_path
            check_resume(opt, state['iter'])
            return state
        if states:  # starting from scratch here would silently throw away the run
            raise CSPSRInputError(f'--auto_resume found {len(states)} training state(s) in {folder} but can resume from '
                                  'none: each is unreadable or lacks its network file (see the warnings above). '
                                  'Move that folder away to start again, or set path:resume_state to a good state.')
        return None
    state_path = opt['path'].get('resume_state')
    if not state_path:
        return None
    if not osp.isfile(state_path):
        raise CSPSRInputError(f'path:resume_state {state_path} does not exist; fix the path or remove it.')
    try:
        state = _load(state_path, device)
    except Exception as err:
        raise CSPSRInputError(f'path:resume_state {state_path} cannot be read ({err}); point it at another '
                              '<iter>.state or use --auto_resume.') from None
    check_resume(opt, state['iter'])
    return state
