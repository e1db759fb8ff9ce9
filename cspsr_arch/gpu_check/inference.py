"""``basicsr infer`` on CUDA: untiled against the CPU, and tiled against untiled where the project promises it.

The command runs in this process through the console script's own entry point (``cspsr_arch.cli.main(['infer',
...])``), on generated pairs: smooth random 8-bit VIS images, each with a NIR image that is its green channel
(plus a second smooth field) shifted 6 LR pixels, as a right camera would see it. The networks are the option
files' (``options/train_CSPSR_x4.yml``: the paper's CSPSR; ``options/train_EDSR_x4.yml``: EDSR) with seed-0
weights (the comparisons do not depend on training). Outputs are 16-bit (``--bits 16``) so that differences
well below one 8-bit grey level show. TF32 is off while they run (as in the equivalence checks).

Rows and what they hold the outputs to (differences as a fraction of the range [0, 1]):

* ``infer:cspsr_cuda_vs_cpu``: CSPSR untiled on CUDA against the same on the CPU, at most :data:`EXACT_TOL` (1e-4,
  about 6.5 levels of 65535: fp32 rounding, not a different result);
* ``infer:cspsr_tiled``: CSPSR on a 582x429 LR frame, ``--tile 256 --tile-overlap 16`` against untiled, on CUDA:
  docs/inference.md says they differ by at most 1 grey level (8 bits; CSFT's channel attention pools over the
  tile, so tiles are close, not equal): at most :data:`GREY_LEVEL` (1/255);
* ``infer:edsr_tiled_exact``: EDSR ``--tile 64 --tile-overlap 40`` against untiled, on CUDA: a convolutional
  network gives the untiled image exactly once the overlap covers its receptive field (docs/inference.md; EDSR's
  is about 36 LR pixels), so up to fp32 rounding: at most :data:`EXACT_TOL`.
"""
import dataclasses
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
import yaml

from cspsr_arch.gpu_check.checks import no_tf32
from cspsr_arch.gpu_check.report import FAIL, PASS, Row, failed_reason

ROOT = Path(__file__).resolve().parents[2]
EXACT_TOL = 1e-4
GREY_LEVEL = 1 / 255


@dataclasses.dataclass(frozen=True)
class InferSizes:
    """Sizes of the inference checks.

    Args:
        small_wh: LR (width, height) of the CUDA-against-CPU pair.
        large_wh: LR (width, height) of the tiling pair.
        cspsr_tile: ``--tile`` and ``--tile-overlap`` of CSPSR.
        edsr_tile: ``--tile`` and ``--tile-overlap`` of EDSR.
        cspsr_net: Changes to the CSPSR options' ``network_g`` (empty: the paper's network).
        edsr_net: Changes to the EDSR options' ``network_g``.
    """

    small_wh: Tuple[int, int] = (160, 120)
    large_wh: Tuple[int, int] = (582, 429)
    cspsr_tile: Tuple[int, int] = (256, 16)
    edsr_tile: Tuple[int, int] = (64, 40)
    cspsr_net: Tuple[Tuple[str, int], ...] = ()
    edsr_net: Tuple[Tuple[str, int], ...] = ()


PAPER_INFER = InferSizes()
TINY_INFER = InferSizes(small_wh=(40, 28), large_wh=(56, 40), cspsr_tile=(24, 8), edsr_tile=(16, 12),
                        cspsr_net=(('num_feat', 8), ('num_dmf', 2), ('max_disp', 6)),
                        edsr_net=(('num_feat', 8), ('num_block', 2)))


def write_pair(folder: Path, width: int, height: int, seed: int = 0, shift: int = 6) -> Dict[str, Path]:
    """A smooth random 8-bit VIS image and its NIR image seen ``shift`` pixels to the right (PNG files).

    Args:
        folder: Where ``pair_rgb.png`` and ``pair_nir.png`` go.
        width: Width (LR pixels).
        height: Height.
        seed: Random seed.
        shift: Disparity of the NIR view (pixels).
    """
    import cv2
    rng = np.random.default_rng(seed)

    def smooth(channels: int) -> np.ndarray:
        small = rng.random((max(height // 6, 2), max((width + shift) // 6, 2), channels)).astype(np.float32)
        big = cv2.resize(small, (width + shift, height), interpolation=cv2.INTER_CUBIC)
        return big.reshape(height, width + shift, -1)

    scene = np.clip(smooth(3) * 0.8 + 0.1, 0, 1)
    nir = np.clip(0.5 * scene[..., 1] + 0.5 * smooth(1)[..., 0], 0, 1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {'vis': folder / 'pair_rgb.png', 'nir': folder / 'pair_nir.png'}
    cv2.imwrite(str(paths['vis']), np.round(scene[:, :width, ::-1] * 255).astype(np.uint8))
    cv2.imwrite(str(paths['nir']), np.round(nir[:, shift:shift + width] * 255).astype(np.uint8))
    return paths


def write_model(folder: Path, arch: str, changes: Tuple[Tuple[str, int], ...]) -> Tuple[Path, Path]:
    """Options (``scale`` and ``network_g`` of ``options/train_<arch>_x4.yml``, with ``changes``) and seed-0 weights.

    Args:
        folder: Where ``<arch>.yml`` and ``<arch>.pth`` go.
        arch: ``CSPSR`` or ``EDSR``.
        changes: ``network_g`` keys and values to change.
    """
    from basicsr.utils.registry import ARCH_REGISTRY

    from cspsr_arch.engine.options import load_options, plain
    opt = load_options(str(ROOT / 'options' / f'train_{arch}_x4.yml'))
    net_opt = {**plain(opt['network_g']), **dict(changes)}
    folder.mkdir(parents=True, exist_ok=True)
    opt_path, model_path = folder / f'{arch}.yml', folder / f'{arch}.pth'
    opt_path.write_text(yaml.safe_dump({'scale': opt['scale'], 'network_g': net_opt}))
    kwargs = dict(net_opt)
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get(kwargs.pop('type'))(**kwargs)
    torch.save({'params': net.state_dict()}, model_path)
    return opt_path, model_path


def infer(opt: Path, model: Path, pair: Dict[str, Path], out: Path, device: str, tile: int = 0,
          overlap: int = 16) -> np.ndarray:
    """Run ``basicsr infer`` (16-bit output) and return the image in [0, 1].

    Args:
        opt: Options file.
        model: Checkpoint.
        pair: ``vis`` and ``nir`` files.
        out: Output PNG.
        device: ``cpu`` or ``cuda``.
        tile: ``--tile`` (0: untiled).
        overlap: ``--tile-overlap``.
    """
    import cv2

    from cspsr_arch.cli import main
    args = ['infer', '-opt', str(opt), '--model', str(model), '--vis', str(pair['vis']), '--nir', str(pair['nir']),
            '--out', str(out), '--bits', '16', '--quiet', '--device', device, '--tile', str(tile),
            '--tile-overlap', str(overlap)]
    with no_tf32():
        status = main(args)
    if status != 0:
        raise RuntimeError(f'basicsr {" ".join(args)} exited with {status}')
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16:
        raise RuntimeError(f'basicsr infer wrote no 16-bit image to {out}')
    return img.astype(np.float64) / 65535


def difference(a: np.ndarray, b: np.ndarray, tol: float) -> Dict:
    """Largest difference, PSNR and whether the largest is within ``tol`` (images in [0, 1]).

    Args:
        a: First image.
        b: Second image.
        tol: Largest difference accepted.
    """
    if a.shape != b.shape:
        return {'shapes': f'{a.shape} vs {b.shape}', 'passed': False}
    diff = np.abs(a - b)
    mse = float((diff ** 2).mean())
    return {'max_diff': float(diff.max()), 'max_diff_grey_levels': float(diff.max() * 255),
            'psnr_db': float('inf') if mse == 0 else float(10 * np.log10(1 / mse)), 'passed': bool(diff.max() <= tol)}


def _row(name: str, result: Dict, tol: float, start: float, why: str) -> Row:
    ok = result.pop('passed')
    return Row(name, PASS if ok else FAIL, result, {'max_diff': tol}, time.time() - start, '' if ok else why)


def inference_rows(workdir: Path, sizes: InferSizes, device: str = 'cuda', log=print) -> List[Row]:
    """The three inference rows (see the module docstring), the tested side on ``device``.

    Args:
        workdir: Working folder (pairs, options, weights and outputs go there).
        sizes: Image, tile and network sizes.
        device: Where the tested side runs (``cuda``; the tests run it on ``cpu``).
        log: Progress lines.
    """
    rows: List[Row] = []
    small = write_pair(workdir / 'small', *sizes.small_wh)
    large = write_pair(workdir / 'large', *sizes.large_wh, seed=1)
    cspsr = write_model(workdir / 'models', 'CSPSR', sizes.cspsr_net)
    edsr = write_model(workdir / 'models', 'EDSR', sizes.edsr_net)
    out = workdir / 'out'
    start = time.time()
    log('[gpu_check] inference: CSPSR untiled, CPU and CUDA')
    try:
        ref = infer(*cspsr, small, out / 'cspsr_cpu.png', 'cpu')
        got = infer(*cspsr, small, out / 'cspsr_dev.png', device)
        rows.append(_row('infer:cspsr_cuda_vs_cpu', difference(got, ref, EXACT_TOL), EXACT_TOL, start,
                         'CUDA output differs from the CPU output'))
    except Exception as err:  # noqa: BLE001
        rows.append(Row('infer:cspsr_cuda_vs_cpu', FAIL, seconds=time.time() - start, reason=failed_reason(err)))
    for name, (opt, model), pair, (tile, overlap), tol in (
            ('infer:cspsr_tiled', cspsr, large, sizes.cspsr_tile, GREY_LEVEL),
            ('infer:edsr_tiled_exact', edsr, large, sizes.edsr_tile, EXACT_TOL)):
        start = time.time()
        log(f'[gpu_check] inference: {name} (--tile {tile} --tile-overlap {overlap})')
        try:
            whole = infer(opt, model, pair, out / f'{name[6:]}_whole.png', device)
            tiled = infer(opt, model, pair, out / f'{name[6:]}_tiled.png', device, tile, overlap)
            result = {'tile': tile, 'overlap': overlap, **difference(tiled, whole, tol)}
            rows.append(_row(name, result, tol, start, 'tiled output differs from untiled beyond what the docs say'))
        except Exception as err:  # noqa: BLE001
            rows.append(Row(name, FAIL, seconds=time.time() - start, reason=failed_reason(err)))
    return rows
