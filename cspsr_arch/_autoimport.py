"""Import every module of a sub-package whose file name ends with a suffix (BasicSR plugin wiring).

BasicSR registers classes when their module is imported, so each sub-package imports all of its
``*_arch.py`` / ``*_dataset.py`` / ``*_model.py`` / ``*_loss.py`` files on import.
"""
import importlib
from pathlib import Path
from types import ModuleType
from typing import List


def import_modules(package_file: str, package_name: str, suffix: str) -> List[ModuleType]:
    """Import every ``<name><suffix>.py`` beside ``package_file``, in sorted order.

    Args:
        package_file (str): ``__file__`` of the sub-package's ``__init__.py``.
        package_name (str): ``__name__`` of the sub-package.
        suffix (str): File-name suffix without ``.py``, e.g. ``'_arch'``.

    Returns:
        list[ModuleType]: The imported modules.
    """
    folder = Path(package_file).resolve().parent
    names = sorted(p.stem for p in folder.glob(f'*{suffix}.py'))
    return [importlib.import_module(f'{package_name}.{name}') for name in names]
