"""cspsr: NIR-guided (cross-spectral) image super-resolution as a BasicSR plugin.

Importing this package registers, in BasicSR's registries:

* archs ``CSPSR`` and ``CrossSpectralStereoNet`` (``cspsr_arch.archs``),
* dataset ``PairedCrossSpectralDataset`` (``cspsr_arch.data``),
* losses ``CrossSpectralSpatialConsistencyLoss`` and ``UnsupervisedStereoLoss`` (``cspsr_arch.losses``),
* metrics ``calculate_disparity_rmse`` and ``calculate_bad_pixel_rate`` (``cspsr_arch.metrics``),
* models ``CSPSRModel`` and ``CrossSpectralStereoModel`` (``cspsr_arch.models``).

BasicSR refuses to register a name twice, and Python imports a module once, so import the package
(never the module files by path).
"""
from cspsr_arch import archs, data, losses, metrics, models  # noqa: F401  (registration side effects)
from cspsr_arch.version import __version__  # noqa: F401
