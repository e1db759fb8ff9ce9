"""Registers every ``*_model.py`` of this folder in BasicSR's registry on import."""
from cspsr_arch._autoimport import import_modules

_modules = import_modules(__file__, __name__, '_model')
