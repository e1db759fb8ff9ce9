#!/usr/bin/env python
"""Export a trained CSPSR to ONNX (dynamic height and width) and check it against PyTorch.

Usage::

    python tools/export_onnx.py -opt options/train_CSPSR_x4.yml --model experiments/.../net_g_latest.pth \\
        [--out cspsr_x4.onnx] [--opset 18] [--check-size 45x61] [--vis a.png --nir a.png] [--json figures.json]

Inputs, outputs, the exporter and the operators that needed care: :mod:`cspsr_arch.infer.onnx`.
"""
import argparse
import sys
from typing import List, Optional, Tuple

from cspsr_arch.infer.onnx import DEFAULT_OPSET, export_checked


def _size(text: str) -> Tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected HxW, e.g. 45x61, got {text!r}') from None
    return h, w


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 parity check failed, 2 bad input)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-opt', required=True, help='options file that built the model (network_g)')
    parser.add_argument('--model', default=None, help='checkpoint; default: path:pretrain_network_g')
    parser.add_argument('--param-key', choices=['params', 'params_ema'], default=None)
    parser.add_argument('--out', default=None, help='ONNX file; default: the checkpoint with .onnx')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--check-size', type=_size, default=(45, 61), help='LR HxW of the random check pair')
    parser.add_argument('--vis', default=None, help='check on this LR VIS image instead of a random pair')
    parser.add_argument('--nir', default=None, help='... and this LR NIR image')
    parser.add_argument('--atol', type=float, default=1e-3, help='largest accepted difference')
    parser.add_argument('--json', default=None, help='write the figures to this JSON file')
    args = parser.parse_args(argv)
    return export_checked(args.opt, args.model, args.param_key, args.out, args.opset, args.check_size, args.vis,
                          args.nir, args.atol, args.json)


if __name__ == '__main__':
    sys.exit(main())
