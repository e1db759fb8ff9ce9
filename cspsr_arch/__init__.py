"""cspsr: NIR-guided (cross-spectral) image super-resolution as a BasicSR plugin.

Importing this package registers, in BasicSR's registries:

* arch ``CSPSR`` (``cspsr_arch.archs``),
* dataset ``PairedCrossSpectralDataset`` (``cspsr_arch.data``),
* loss ``CrossSpectralSpatialConsistencyLoss`` (``cspsr_arch.losses``),
* model ``CSPSRModel`` (``cspsr_arch.models``).

BasicSR refuses to register a name twice, and Python imports a module once, so import the package
(never the module files by path).
"""
from cspsr_arch import archs, data, losses, models  # noqa: F401  (registration side effects)
from cspsr_arch.version import __version__  # noqa: F401
