"""Rows of the benchmark report for single-image SR checkpoints of other projects (``tools/benchmark.py --external
NAME=path.pth``): scored on the same test splits and protocols as the trained rows, without training.

The checkpoint is loaded by :func:`cspsr_arch.infer.external.load_external_model` (any architecture spandrel
recognises) and run on whole test images as the trained models are; its scale must be the benchmark's. Scores
are cached per row, protocol and test set like the others, and recomputed when the checkpoint's bytes or the
test split change.
"""
import hashlib
import json
from pathlib import Path
from typing import Dict, Optional

import torch

from cspsr_arch.benchmark.evaluation import mean_scores, score_loader, split_fingerprint, test_loader
from cspsr_arch.errors import CSPSRInputError


class ExternalModel:
    """The model interface :func:`~cspsr_arch.benchmark.evaluation.score_loader` runs (``feed_data``, ``test``,
    ``get_current_visuals``) around a VIS-only network; the NIR of a batch is not read.

    Args:
        net: A :class:`~cspsr_arch.infer.vis_only.VisOnlySR`.
    """

    def __init__(self, net) -> None:
        self.net = net

    def feed_data(self, data: dict) -> None:
        self.lq = data['lq']

    def test(self) -> None:
        with torch.no_grad():
            self.output = self.net(self.lq).sr

    def get_current_visuals(self) -> dict:
        return {'result': self.output}


def parse_external(items) -> Dict[str, Path]:
    """``NAME=path.pth`` items of ``--external`` as name -> path; names must be new rows, paths files.

    Args:
        items: The command line's strings.
    """
    from cspsr_arch.benchmark.presets import ROW_MODELS
    out: Dict[str, Path] = {}
    for item in items:
        name, equals, path = item.partition('=')
        if not (equals and name and path):
            raise CSPSRInputError(f'--external {item!r}: expected NAME=path.pth, e.g. SwinIR=models/SwinIR_x4.pth.')
        if name in (*ROW_MODELS, 'bicubic') or name in out:
            raise CSPSRInputError(f'--external {item!r}: {name} is already a row of the report; choose another name.')
        if not Path(path).is_file():
            raise CSPSRInputError(f'--external {item!r}: {path} is not a file.')
        out[name] = Path(path)
    return out


def evaluate_external(name: str, path: Path, root: Path, test_name: str, split: Path, scale: int,
                      image_dir: Optional[Path], degradation: Optional[dict] = None) -> dict:
    """Scores of an external checkpoint on a test split, cached in ``<root>/eval``.

    Args:
        name: Row name.
        path: The checkpoint.
        root: The benchmark folder.
        test_name: Name of the test set (for the cache).
        split: Test split folder.
        scale: The benchmark's scale (the checkpoint's must be the same).
        image_dir: Where ``<key>_<name>.png`` go; None: not saved.
        degradation: The camera protocol's block, or None (bicubic protocol).

    Returns:
        dict: the mean metrics, ``images`` (per key), ``split_sha256`` and ``checkpoint_sha256``.
    """
    from cspsr_arch.infer.external import load_external_model
    protocol = 'camera' if degradation is not None else 'bicubic'
    cache = root / 'eval' / f'external_{name}_x{scale}_{protocol}_{test_name}.json'
    fingerprint = split_fingerprint(split, scale)
    checkpoint = hashlib.sha256(path.read_bytes()).hexdigest()
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get('split_sha256') == fingerprint and cached.get('checkpoint_sha256') == checkpoint:
            return cached
    model = ExternalModel(load_external_model(str(path), scale=scale))
    per_image = score_loader(model, test_loader(split, scale, degradation), scale, image_dir, name)
    result = {**mean_scores(per_image), 'images': per_image, 'split_sha256': fingerprint,
              'checkpoint_sha256': checkpoint, 'checkpoint': str(path)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=1))
    return result
