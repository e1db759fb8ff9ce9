"""``basicsr test`` over the test sets that are present: absent ones are skipped with a clear message.

An options file such as ``options/test_CSPSR_x4.yml`` lists several test sets (``test_1``, ``test_2``,
...). Users rarely have all of them; :func:`drop_absent_test_sets` removes the entries none of whose
data folders exist (printing one line per skipped set that says how to prepare it) and keeps the rest.
A set that is only partly there (e.g. ``HR/VIS`` prepared but not ``LR_bicubic/X4``) is kept, so the strict
option check reports the missing folder. When no test set is present at all it is an error.
"""
from __future__ import annotations

import os
import sys
from typing import List, Mapping, MutableMapping, Optional, TextIO

from cspsr_arch.errors import CSPSRInputError

def drop_training_sets(opt: MutableMapping, out: Optional[TextIO] = None) -> List[str]:
    """Remove the training sets (``datasets:train``) from the options of ``basicsr test``, one line each.

    ``basicsr test`` runs on the options a model trained with (``experiments/<name>/<file>.yml``): their
    validation set is the test set, while the training set, cropped and shuffled, is not one.

    Args:
        opt: Parsed options (``datasets`` changed in place).
        out: Where the lines go (default: stdout).

    Returns:
        The names of the removed entries.
    """
    datasets = opt.get('datasets') or {}
    dropped = [name for name in datasets if str(name).split('_')[0] == 'train']
    for name in dropped:
        del datasets[name]
        print(f'basicsr test: datasets:{name} is a training set; it is not tested.', file=out or sys.stdout)
    return dropped


PREPARE_HINT = 'prepare it with tools/prepare_data.py (see datasets/README.md)'


def dataroots(dataset_opt: Mapping) -> List[str]:
    """The data paths (``dataroot*`` options that are set) of one dataset entry.

    Args:
        dataset_opt: One entry of ``opt['datasets']``.
    """
    return [str(v) for k, v in dataset_opt.items() if str(k).startswith('dataroot') and v is not None]


def absent_test_sets(datasets: Mapping) -> dict:
    """The entries none of whose data paths exist (relative paths start at the current directory).

    Args:
        datasets: ``opt['datasets']``.

    Returns:
        Entry name (``test_2``) -> its first data path (what is missing).
    """
    absent = {}
    for phase, dataset_opt in datasets.items():
        roots = dataroots(dataset_opt)
        if roots and not any(os.path.exists(root) for root in roots):
            absent[phase] = roots[0]
    return absent


def drop_absent_test_sets(opt: MutableMapping, stream: Optional[TextIO] = None) -> List[str]:
    """Remove the test sets whose data are absent from ``opt['datasets']``, saying which and why.

    Args:
        opt: Parsed test options (``basicsr.utils.options.parse_options(..., is_train=False)``); changed in place.
        stream: Where the messages go (default ``sys.stderr``).

    Returns:
        Names (``name`` option, or the entry key) of the skipped test sets.

    Raises:
        CSPSRInputError: No test set of the file is present.
    """
    stream = stream or sys.stderr
    datasets = opt.get('datasets') or {}
    absent = absent_test_sets(datasets)
    names = {phase: datasets[phase].get('name', phase) for phase in absent}
    if absent and len(absent) == len(datasets):
        listing = '; '.join(f'{names[p]} (datasets:{p}: {root})' for p, root in absent.items())
        raise CSPSRInputError(f'No test set of this options file is present (relative paths start at the current '
                              f'directory, {os.getcwd()}): {listing}. Prepare one: see datasets/README.md '
                              '(tools/prepare_data.py), or point its dataroot options at your data (--force_yml).')
    for phase, root in absent.items():
        print(f'basicsr test: skipping test set {names[phase]} (datasets:{phase}): {root} does not exist; '
              f'{PREPARE_HINT}.', file=stream)
        del datasets[phase]
    if absent:
        kept = ', '.join(str(d.get('name', p)) for p, d in datasets.items())
        print(f'basicsr test: testing on {len(datasets)} of {len(datasets) + len(absent)} test sets: {kept}.',
              file=stream)
    return [str(names[p]) for p in absent]
