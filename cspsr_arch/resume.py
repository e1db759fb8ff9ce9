"""Device-agnostic replacement for ``basicsr.train.load_resume_state``.

BasicSR's version maps the state onto ``torch.cuda.current_device()``, which fails on a machine
without a GPU, and looks for auto-resume states in ``./experiments`` whatever ``experiments_root`` says.
"""
import os
import re
from os import path as osp
from typing import Optional

import torch
from basicsr.utils.misc import check_resume

from cspsr_arch.errors import CSPSRInputError


def latest_state(folder: str) -> Optional[str]:
    """Path of the ``<iter>.state`` file with the highest iteration in ``folder`` (None if there is none)."""
    if not osp.isdir(folder):
        return None
    found = []
    for name in os.listdir(folder):
        match = re.fullmatch(r'(\d+)\.state', name)
        if match:
            found.append((int(match.group(1)), name))
    return osp.join(folder, max(found)[1]) if found else None


def load_resume_state(opt: dict) -> Optional[dict]:
    """Load the training state to resume from, onto the device the options ask for.

    With ``--auto_resume`` the newest state under ``opt['path']['training_states']`` is used (and
    recorded in ``opt['path']['resume_state']``); otherwise ``path:resume_state`` if set.

    Args:
        opt (dict): Parsed options.

    Returns:
        dict | None: The state (``iter``, ``epoch``, ``optimizers``, ``schedulers``) or None.
    """
    state_path = None
    if opt['auto_resume']:
        state_path = latest_state(opt['path']['training_states'])
        if state_path is not None:
            opt['path']['resume_state'] = state_path
    elif opt['path'].get('resume_state'):
        state_path = opt['path']['resume_state']
    if state_path is None:
        return None
    if not osp.isfile(state_path):
        raise CSPSRInputError(f'path:resume_state {state_path} does not exist; fix the path or remove it.')
    if opt['num_gpu'] != 0 and torch.cuda.is_available():
        device = torch.device('cuda', torch.cuda.current_device())
    else:
        device = torch.device('cpu')
    # optimizer and scheduler states are pickled objects, so weights_only cannot be used here
    state = torch.load(state_path, map_location=device, weights_only=False)
    check_resume(opt, state['iter'])
    return state
