"""Registers every ``*_metric.py`` of this folder in BasicSR's metric registry on import."""
from cspsr_arch._autoimport import import_modules

_modules = import_modules(__file__, __name__, '_metric')
