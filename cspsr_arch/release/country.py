"""The camera-protocol test inputs of EPFL country test pairs, made as the benchmark makes them.

The benchmark (``tools/benchmark.py --datasets country``, :mod:`cspsr_arch.benchmark.pipeline`) turns the
real pairs of ``nirscene_country`` into stereo pairs with the semi-synthetic generator
(:func:`cspsr_arch.prep.semisynthetic.build_dataset`; a test pair is written once, variant 0, seeded by its
name), and its evaluation reads them through ``PairedCrossSpectralDataset`` with the camera protocol's
``degradation`` block, which fixes the noise of each test image by its key
(:func:`cspsr_arch.benchmark.evaluation.test_loader`). :func:`country_test_split` runs the same generator with
the preset's settings on a few test keys only (a test image depends on its own pair alone, so the files
are byte for byte those of the benchmark's test split), and :func:`camera_inputs` reads them as the
evaluation does, for tests and for writing the LR inputs a user would give ``basicsr infer``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Sequence

from torch import Tensor

from cspsr_arch.errors import CSPSRInputError


class CameraSample(NamedTuple):
    """One test image under the camera protocol: LR VIS (1, 3, h, w) RGB and NIR (1, 1, h, w) in [0, 1],
    HR ground truth (1, 3, s*h, s*w) RGB."""

    key: str
    lq: Tensor
    lq_nir: Tensor
    gt: Tensor


def country_test_split(country: Path, keys: Sequence[str], out: Path, preset_name: str = 'cpu',
                       scale: int = 4) -> Path:
    """The benchmark's test split of the country set, for ``keys`` only.

    Args:
        country: Folder of the EPFL country pairs (``<key>_rgb.jpg`` / ``<key>_nir.jpg``).
        keys: Test keys of the preset (e.g. ``0046``); others are refused, as their images would be
            training variants, not test ones.
        out: Folder to write (``<out>/inputs`` holds links to the sources, ``<out>/test`` the split).
        preset_name: Benchmark preset whose ``country`` settings (size, test scenes) to use.
        scale: Scale factor (one of the preset's).

    Returns:
        Path: The test split folder.
    """
    from cspsr_arch.benchmark.presets import PRESETS
    from cspsr_arch.prep.semisynthetic import build_dataset
    settings = dict(PRESETS[preset_name].country)
    tests = settings.pop('test_scenes')
    policy = settings.pop('misaligned')
    settings.pop('variants')
    unknown = sorted(set(keys) - set(tests))
    if unknown or not keys:
        raise CSPSRInputError(f'keys {unknown or "(none)"} are not test keys of the {preset_name} preset; choose among '
                              f'{", ".join(tests)}.')
    inputs = out / 'inputs'
    inputs.mkdir(parents=True, exist_ok=True)
    for key in keys:
        for stream in ('rgb', 'nir'):
            source = country / f'{key}_{stream}.jpg'
            if not source.is_file():
                raise CSPSRInputError(f'{source} is missing: point at the nirscene_country folder (its README says '
                                      'where the pairs come from).')
            link = inputs / source.name
            if not link.exists():
                os.symlink(source.resolve(), link)
    build_dataset(inputs, out, [scale], 0, test_scenes=list(keys), variants=1, misaligned=policy, overwrite=True,
                  **settings)
    return out / 'test'


def camera_inputs(split: Path, scale: int = 4, degradation: Optional[dict] = None) -> Iterator[CameraSample]:
    """The test images of ``split`` as the benchmark's evaluation reads them.

    Args:
        split: Test split in the canonical layout.
        scale: Scale factor.
        degradation: The camera protocol's block; None: the preset ``cpu``'s (the release run's protocol).
    """
    from cspsr_arch.benchmark.evaluation import test_loader
    from cspsr_arch.benchmark.presets import CPU
    for batch in test_loader(split, scale, dict(CPU.camera) if degradation is None else degradation):
        yield CameraSample(Path(batch['gt_path'][0]).stem, batch['lq'], batch['lq_nir'], batch['gt'])


def write_inputs(sample: CameraSample, folder: Path) -> tuple:
    """Write a sample's LR VIS and NIR as 8-bit PNGs ``<key>_rgb.png`` / ``<key>_nir.png`` (lossless: the camera
    protocol quantises its output to 8 bits) and the ground truth as ``<key>_gt.png``.

    Args:
        sample: The sample.
        folder: Output folder.

    Returns:
        tuple[Path, Path, Path]: The VIS, NIR and ground-truth files.
    """
    from basicsr.utils import tensor2img

    from cspsr_arch.infer.pairs import write_png
    paths = (folder / f'{sample.key}_rgb.png', folder / f'{sample.key}_nir.png', folder / f'{sample.key}_gt.png')
    for image, path in zip((sample.lq, sample.lq_nir, sample.gt), paths):
        write_png(str(path), tensor2img(image))  # 8-bit, BGR for colour, as cv2 writes it
    return paths
