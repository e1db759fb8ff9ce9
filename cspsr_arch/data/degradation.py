"""Camera degradation of the LR streams: the ``degradation:`` option of ``PairedCrossSpectralDataset``.

The bicubic protocol gives both networks clean LR images, where a NIR image adds a second view and a
spectrum but no information the VIS lacks. Real RGB-NIR rigs are used where the visible camera is poor:
at night, at high ISO, behind a lossy codec. This protocol keeps the clean HR VIS as ground truth and
gives the network what such a camera would record of the LR scene:

* **VIS, low light.** In linear light (gamma 2.2) the signal is scaled by an exposure ``e`` (the fraction
  of the light a well-exposed shot collects), heteroscedastic Gaussian noise of variance
  ``shot * x + read`` is added (the Poisson-Gaussian sensor model), and the camera's gain ``1 / e``
  restores the brightness, so the noise is amplified as in a real high-ISO shot. The read-noise variance
  follows the shot-noise level by the log-linear fit of Brooks et al., "Unprocessing Images for Learned
  Raw Denoising" (CVPR 2019): ``ln(read) = 2.18 ln(shot) + 1.20``; the default shot range is the lower
  half (in log scale) of the range they sample for real cameras, ``[1e-4, 1.2e-2]``. Then 8-bit
  quantisation and optionally JPEG (BasicSR's ``add_jpg_compression``).
* **NIR.** Its own, milder sensor noise (no exposure loss by default): NIR cameras of such rigs use
  active illumination or larger pixels.

Parameters are ranges, sampled per sample (log-uniformly for the noise and exposure, uniformly for the
JPEG quality) in training; at validation and test they and the noise are drawn from a generator seeded
by the sample's key, so every model and every run sees the same test inputs, whatever the data-loader
workers. BasicSR's own ``add_poisson_noise`` / ``add_gaussian_noise`` draw from NumPy's global generator
in display space, which can be neither seeded per key nor made linear, so only its JPEG step is reused.
"""
import zlib
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from basicsr.data.degradations import add_jpg_compression

from cspsr_arch.errors import CSPSRInputError

GAMMA = 2.2
"""Display gamma of the 8-bit images (the same as the synthetic data's cameras)."""

Range = Tuple[float, float]

DEFAULTS: Dict[str, Dict[str, Optional[Sequence[float]]]] = {
    'vis': {'exposure': (1 / 32, 1 / 4), 'shot': (1e-4, 1e-3), 'jpeg': None},
    'nir': {'exposure': None, 'shot': (1e-4, 3e-4), 'jpeg': None},
}
"""Defaults of each stream's block; a stream set to ``null`` is left clean."""


def _range(value: object, where: str, low: float, high: float) -> Optional[Range]:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = (value, value)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and low <= v <= high for v in value) or value[0] > value[1]):
        raise CSPSRInputError(f'degradation option {where}: expected a number or [min, max] with '
                              f'{low} <= min <= max <= {high}, got {value!r}.')
    return float(value[0]), float(value[1])


@dataclass(frozen=True)
class StreamDegradation:
    """What one camera does to its LR stream (None: that step is skipped).

    Args:
        exposure: Range of the exposure fraction ``e`` in (0, 1]; the gain ``1 / e`` restores brightness.
        shot: Range of the shot-noise variance per unit of linear signal (read noise follows it).
        jpeg: Range of the JPEG quality (VIS only: BasicSR's JPEG step decodes to three channels).
    """

    exposure: Optional[Range]
    shot: Optional[Range]
    jpeg: Optional[Range]

    def sample(self, rng: np.random.Generator) -> Dict[str, float]:
        """Draw this sample's parameters."""

        def log_uniform(bounds: Range) -> float:
            return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))

        params = {}
        if self.exposure:
            params['exposure'] = log_uniform(self.exposure)
        if self.shot:
            params['shot'] = log_uniform(self.shot)
        if self.jpeg:
            params['jpeg'] = float(rng.uniform(*self.jpeg))
        return params

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Degrade a float32 HWC image in [0, 1] (a new array; ``img`` is not modified)."""
        params = self.sample(rng)
        exposure = params.get('exposure', 1.0)
        lin = np.clip(img, 0, 1).astype(np.float64)**GAMMA * exposure
        if 'shot' in params:
            shot = params['shot']
            read = np.exp(2.18 * np.log(shot) + 1.20)
            lin = lin + np.sqrt(shot * lin + read) * rng.standard_normal(lin.shape)
        out = np.clip(lin / exposure, 0, 1)**(1 / GAMMA)
        out = (np.round(out * 255) / 255).astype(np.float32)
        if 'jpeg' in params:
            out = add_jpg_compression(out, int(round(params['jpeg'])))
        return out


class CameraDegradation:
    """The ``degradation:`` block of a dataset: per-stream camera models and the test-time seed.

    Args:
        opt: ``{'vis': {...} | None, 'nir': {...} | None, 'seed': int}``; each stream block takes
            ``exposure``, ``shot`` and ``jpeg`` (``[min, max]`` or one number; ``null`` skips the step);
            missing keys take :data:`DEFAULTS`. ``{}`` is the default low-light protocol.
        name: Dataset name, for error messages.
    """

    def __init__(self, opt: dict, name: str = '') -> None:
        if not isinstance(opt, dict):
            raise CSPSRInputError(f'Dataset {name}: degradation must be a mapping (e.g. {{}} for the defaults), '
                                  f'got {opt!r}.')
        unknown = sorted(set(opt) - {'vis', 'nir', 'seed'})
        if unknown:
            raise CSPSRInputError(f'Dataset {name}: unknown degradation option(s) {unknown}; expected vis, nir, seed.')
        self.seed = int(opt.get('seed', 0))
        self.streams: Dict[str, StreamDegradation] = {}
        for stream, defaults in DEFAULTS.items():
            block = opt.get(stream, {})
            if block is None:
                continue
            if not isinstance(block, dict) or set(block) - set(defaults):
                raise CSPSRInputError(f'Dataset {name}: degradation.{stream} takes {sorted(defaults)} '
                                      f'(a mapping, or null for a clean stream), got {block!r}.')
            if stream == 'nir' and block.get('jpeg') is not None:
                raise CSPSRInputError(f'Dataset {name}: degradation.nir.jpeg is not supported (VIS only).')
            values = {**defaults, **block}
            self.streams[stream] = StreamDegradation(
                exposure=_range(values['exposure'], f'{stream}.exposure', 1e-4, 1.0),
                shot=_range(values['shot'], f'{stream}.shot', 1e-8, 1.0),
                jpeg=_range(values['jpeg'], f'{stream}.jpeg', 1, 100))

    def resolved(self) -> dict:
        """The block with every default filled in (what a report prints instead of ``{}``): per stream its
        ``exposure``, ``shot`` and ``jpeg`` ranges (None: the step is skipped), a stream left clean as None, and
        the ``seed``."""
        out: dict = {}
        for stream in DEFAULTS:
            model = self.streams.get(stream)
            out[stream] = None if model is None else {k: None if v is None else list(v)
                                                      for k, v in (('exposure', model.exposure), ('shot', model.shot),
                                                                   ('jpeg', model.jpeg))}
        out['seed'] = self.seed
        return out

    def rng(self, key: Optional[str]) -> np.random.Generator:
        """The generator of one sample: seeded by ``key`` (test), or drawn from NumPy's seeded state (training)."""
        if key is None:
            return np.random.default_rng(np.random.randint(0, 2**31 - 1))
        return np.random.default_rng([self.seed, zlib.crc32(key.encode('utf-8'))])

    def __call__(self, lq: np.ndarray, lq_nir: np.ndarray, key: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Degrade one sample's LR VIS (HW3) and LR NIR (HW1).

        Args:
            lq: LR VIS, float32 in [0, 1].
            lq_nir: LR NIR, float32 in [0, 1].
            key: Sample key for a fixed degradation (validation and test); None draws a random one (training).
        """
        rng = self.rng(key)
        if 'vis' in self.streams:
            lq = self.streams['vis'].apply(lq, rng)
        if 'nir' in self.streams:
            lq_nir = self.streams['nir'].apply(lq_nir, rng)
        return lq, lq_nir
