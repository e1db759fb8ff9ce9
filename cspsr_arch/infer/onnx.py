"""Export a trained CSPSR to ONNX (dynamic height and width) and check it against PyTorch
(``tools/export_onnx.py``).

The network is built from the options' ``network_g`` and loaded as ``basicsr infer`` loads it
(:func:`cspsr_arch.infer.model.load_inference_model`). Inputs: ``lq`` (1, 3, h, w) RGB in [0, 1] and
``lq_nir`` (1, 1, h, w), or (1, 1, f*h, f*w) for a network with ``nir_scale`` f, plus ``disp`` (1, 1, h, w)
for ``cvm: given``; outputs: ``sr``, ``nir_sr``
(dual-branch networks) and ``disp_l`` (networks that warp). Height and width are dynamic (8 to 8192),
the batch is 1 (``basicsr infer`` also runs one image, or one tile, at a time).

It is exported with PyTorch's ``torch.export``-based exporter (``dynamo=True``, needs ``onnxscript``)
at opset 18 (one self-contained file), traced at one size, then run with onnxruntime on an input of
another size (a random pair, or ``--vis``/``--nir``) and compared with PyTorch; the largest absolute
difference per output is printed, and the tool fails (exit 1) when it exceeds ``--atol``.

Operators that needed care:

* the warp (``cspsr_arch.archs.warp``: ``grid_sample`` as in ``basicsr.archs.arch_util.flow_warp``, bilinear,
  zero padding, ``align_corners=True``) becomes ONNX ``GridSample`` (opset >= 16); its sampling grid is
  built from the input's height and width, so those stay symbolic. The legacy TorchScript exporter
  (``dynamo=False``) is not used: on a small random CSPSR exported with dynamic axes its ``sr`` differed
  from PyTorch by up to 0.2 under onnxruntime (each module exported alone matched; not tracked down
  further), where ``torch.export`` matches to about 1e-6;
* the dynamic convolution's per-pixel kernels (softmax over k*k taps, then k*k shifted slices of the
  zero-padded features accumulated with ``addcmul_``) export as Pad + Slice + Mul/Add with symbolic
  slice ends; the in-place accumulation is functionalised by ``torch.export``;
* the bicubic global skip becomes ``Resize`` (cubic, coefficient -0.75, half-pixel), and the learned
  matching's Python loop over candidate disparities is unrolled (a fixed ``max_disp - min_disp + 1``
  slices).
"""
import contextlib
import io
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

DEFAULT_OPSET = 18
TRACE_SIZE = (32, 40)


class ExportWrapper(nn.Module):
    """CSPSR with plain tensor outputs: ``sr`` [, ``nir_sr``] [, ``disp_l``].

    Args:
        net (nn.Module): A CSPSR in eval mode.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.input_names: List[str] = ['lq', 'lq_nir'] + (['disp'] if net.cvm == 'given' else [])
        self.output_names: List[str] = (['sr'] + (['nir_sr'] if net.branches == 'dual' else [])
                                        + (['disp_l'] if net.cvm != 'none' else []))

    def forward(self, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        out = self.net(lq, lq_nir, disp)
        values = {'sr': out.sr, 'nir_sr': out.nir_sr, 'disp_l': out.disp_l}
        return tuple(values[name] for name in self.output_names)


def sample_inputs(wrapper: ExportWrapper, size: Tuple[int, int], seed: int = 0) -> Tuple[Tensor, ...]:
    """Random inputs of ``size`` (LR h, w; the NIR at ``nir_scale`` x it); a smooth disparity in 0..4 pixels for
    ``cvm: given``."""
    gen = torch.Generator().manual_seed(seed)
    f = getattr(wrapper.net, 'nir_scale', 1)
    lq, nir = torch.rand(1, 3, *size, generator=gen), torch.rand(1, 1, f * size[0], f * size[1], generator=gen)
    if 'disp' not in wrapper.input_names:
        return lq, nir
    ramp = torch.linspace(0, 4, size[1]).view(1, 1, 1, -1).expand(1, 1, *size).contiguous()
    return lq, nir, ramp


def pair_inputs(wrapper: ExportWrapper, vis: str, nir: str) -> Tuple[Tensor, ...]:
    """A real pair as network inputs (read as ``basicsr infer`` reads it)."""
    from cspsr_arch.errors import CSPSRInputError
    from cspsr_arch.infer.pairs import Pair, load_pair
    if 'disp' in wrapper.input_names:
        raise CSPSRInputError('--vis/--nir checks are for networks without a given disparity; use --check-size.')
    loaded = load_pair(Pair('sample', vis, nir), torch.device('cpu'), getattr(wrapper.net, 'nir_scale', 1))
    return loaded.vis, loaded.nir


def export(wrapper: ExportWrapper, path: str, opset: int = DEFAULT_OPSET) -> float:
    """Export ``wrapper`` to ``path`` with dynamic height and width (batch 1); returns the seconds it took."""
    from torch.export import Dim
    height, width = Dim('height', min=8, max=8192), Dim('width', min=8, max=8192)
    example = sample_inputs(wrapper, TRACE_SIZE)
    names = ['lq', 'lq_nir', 'disp'][:len(example)]
    dynamic = {name: {2: height, 3: width} for name in names}
    f = getattr(wrapper.net, 'nir_scale', 1)
    if f != 1:  # the NIR at nir_scale x the LR size: derived dimensions, so the two stay tied
        dynamic['lq_nir'] = {2: f * height, 3: f * width}
    start = time.time()
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(wrapper, example, path, dynamo=True, opset_version=opset,
                              input_names=wrapper.input_names, output_names=wrapper.output_names,
                              dynamic_shapes=dynamic, external_data=False, verbose=False)  # one self-contained file
    except Exception:
        print(chatter.getvalue(), file=sys.stderr)
        raise
    return time.time() - start


def parity(wrapper: ExportWrapper, path: str, inputs: Tuple[Tensor, ...]) -> Dict[str, float]:
    """Largest absolute difference between onnxruntime and PyTorch, per output."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    with torch.no_grad():
        expected = wrapper(*inputs)
    got = session.run(wrapper.output_names, {n: t.numpy() for n, t in zip(wrapper.input_names, inputs)})
    diffs = {}
    for name, ref, out in zip(wrapper.output_names, expected, got):
        if tuple(ref.shape) != out.shape:
            raise RuntimeError(f'ONNX output {name} has shape {out.shape}, PyTorch {tuple(ref.shape)}.')
        diffs[name] = float(np.abs(ref.numpy() - out).max())
    return diffs


def export_checked(opt_path: str, model_path: Optional[str] = None, param_key: Optional[str] = None,
                   out: Optional[str] = None, opset: int = DEFAULT_OPSET, check_size: Tuple[int, int] = (45, 61),
                   vis: Optional[str] = None, nir: Optional[str] = None, atol: float = 1e-3,
                   json_path: Optional[str] = None) -> int:
    """Load a trained CSPSR, export it to ONNX, compare onnxruntime with PyTorch and print the figures.

    Args:
        opt_path: Options file that built the model (``network_g``).
        model_path: Checkpoint; None: ``path:pretrain_network_g`` of the options.
        param_key: ``params`` or ``params_ema``; None: ``params_ema`` when the checkpoint has it.
        out: ONNX file; None: the checkpoint with ``.onnx``.
        opset: ONNX opset.
        check_size: LR (height, width) of the random check pair.
        vis: Check on this LR VIS image instead of a random pair (with ``nir``).
        nir: ... and this LR NIR image.
        atol: Largest accepted difference.
        json_path: Also write the figures to this JSON file.

    Returns:
        int: Exit status: 0, 1 when the parity check failed, 2 after a one-line message for bad input.
    """
    import cspsr_arch  # noqa: F401  (registers CSPSR)
    from cspsr_arch.errors import CSPSRInputError
    from cspsr_arch.infer.model import load_inference_model
    from cspsr_arch.infer.vis_only import VisOnlySR
    try:
        if (vis is None) != (nir is None):
            raise CSPSRInputError('--vis and --nir go together.')
        net = load_inference_model(opt_path, model_path, param_key)
        if isinstance(net, VisOnlySR):
            raise CSPSRInputError(f'{opt_path} builds network_g:type {net.arch}: this tool exports CSPSR models (VIS '
                                  'and NIR inputs, several outputs); a VIS-only network exports with '
                                  'torch.onnx.export(net, lq, ...) directly.')
        wrapper = ExportWrapper(net).eval()
        out = out or str(Path(model_path or 'cspsr').with_suffix('.onnx'))
        inputs = pair_inputs(wrapper, vis, nir) if vis else sample_inputs(wrapper, check_size, 1)
    except CSPSRInputError as err:
        print(f'export_onnx: error: {err}', file=sys.stderr)
        return 2
    import onnxruntime
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    seconds = export(wrapper, out, opset)
    diffs = parity(wrapper, out, inputs)
    size = tuple(inputs[0].shape[-2:])
    figures = {'onnx': out, 'opset': opset, 'export_seconds': round(seconds, 1), 'check_size': list(size),
               'trace_size': list(TRACE_SIZE), 'max_abs_diff': diffs,
               'torch': torch.__version__, 'onnxruntime': onnxruntime.__version__}
    print(f'Exported {out} (opset {opset}, dynamic height/width, batch 1, traced at '
          f'{TRACE_SIZE[0]}x{TRACE_SIZE[1]}, {seconds:.1f} s).')
    print(f'onnxruntime vs PyTorch on a {size[0]}x{size[1]} input, max abs difference: '
          + ', '.join(f'{k} {v:.2e}' for k, v in diffs.items()))
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + '\n')
    worst = max(diffs.values())
    if worst > atol:
        print(f'export_onnx: parity check failed: {worst:.2e} > --atol {atol}', file=sys.stderr)
        return 1
    return 0
