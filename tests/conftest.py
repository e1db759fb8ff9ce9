"""Shared pytest set-up: import cspsr_arch once (registration) and expose the toy-data helpers.

``tests/`` is on ``sys.path`` through the ``pythonpath`` option of pytest.ini, so test modules in
sub-folders import ``toy_data`` and ``conftest`` by name.
"""
from pathlib import Path

import pytest

import cspsr_arch  # noqa: F401  (registers everything once for the whole session)

ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = ROOT.parent / 'shared' / 'data' / 'real_rgbnir'
SHARED_COUNTRY = ROOT.parent / 'shared' / 'data' / 'nirscene_country'


@pytest.fixture
def toy_split(tmp_path):
    """A two-scene toy split with a constant 4-pixel disparity at tmp_path/toy/train."""
    from toy_data import make_toy_split
    split = tmp_path / 'toy' / 'train'
    scenes = make_toy_split(split)
    return split, scenes
