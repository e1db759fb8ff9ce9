"""Shared pytest set-up: import cspsr_arch once (registration) and expose the toy-data helpers.

``tests/`` is on ``sys.path`` through the ``pythonpath`` option of pytest.ini, so test modules in
sub-folders import ``toy_data`` and ``conftest`` by name.
"""
import importlib.util
import sys
from pathlib import Path

import pytest

import cspsr_arch  # noqa: F401  (registers everything once for the whole session)

ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = ROOT.parent / 'shared' / 'data' / 'real_rgbnir'
SHARED_COUNTRY = ROOT.parent / 'shared' / 'data' / 'nirscene_country'


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module (tools/ is not a package)."""
    module_name = f'cspsr_tool_{name}'
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def toy_split(tmp_path):
    """A two-scene toy split with a constant 4-pixel disparity at tmp_path/toy/train."""
    from toy_data import make_toy_split
    split = tmp_path / 'toy' / 'train'
    scenes = make_toy_split(split)
    return split, scenes
