"""``tools/release_weights.py``: release a benchmark's weights, write test inputs, draw crop figures.

Sub-commands:

* ``release``: for each ``ROW=RUN=OUT`` (default: the two released x4 camera-protocol models), write
  ``OUT.pth`` / ``OUT.yml`` from the run (:func:`cspsr_arch.release.weights.release_weights`), then the record
  of the card (``--record``, :func:`cspsr_arch.release.card.release_record`, from the run's ``report.json``)
  and the card's generated block (``--card``).
* ``inputs``: the camera-protocol LR inputs (and ground truth) of country test keys as PNGs, exactly as the
  benchmark scores them (:mod:`cspsr_arch.release.country`), to run ``basicsr infer`` on.
* ``figure``: one crop of bicubic (from the LR VIS), the given outputs and the ground truth
  (:mod:`cspsr_arch.release.figure`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional

from cspsr_arch.errors import CSPSRInputError

RELEASES = ('EDSR=EDSR_x4_camera=weights/EDSR_country_camera_x4',
            'CSPSR=CSPSR_x4_camera=weights/CSPSR_country_camera_x4')
"""The released files: table row = benchmark run = output path without suffix."""
NOTES = {'CSPSR': 'CSPSR (VIS + NIR, learned cross-view matching), x4, trained on EPFL country pairs, camera protocol',
         'EDSR': 'EDSR (VIS only), x4, trained on EPFL country pairs, camera protocol'}


def _release(args: argparse.Namespace) -> int:
    from cspsr_arch.release.card import release_record, update_card
    from cspsr_arch.release.weights import release_weights
    report_path = args.benchmark / 'report.json'
    if not report_path.is_file():
        raise CSPSRInputError(f'{report_path} does not exist: the benchmark has not finished (tools/benchmark.py '
                              'writes it last).')
    files = {}
    for item in args.release:
        parts = item.split('=')
        if len(parts) != 3 or not all(parts):
            raise CSPSRInputError(f'--release {item!r}: expected ROW=RUN=OUT, e.g. {RELEASES[0]}.')
        row, run, out = parts
        files[row] = release_weights(args.benchmark, run, Path(out), NOTES.get(row, ''))
        print(f"release: {files[row]['weights']} ({files[row]['params']:,} parameters, {files[row]['bytes']:,} bytes, "
              f"sha256 {files[row]['sha256'][:16]}...) and {files[row]['options']}")
    record = release_record(json.loads(report_path.read_text()), list(files), files)
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps(record, indent=1) + '\n')
    print(f'release: {args.record}')
    if args.card is not None:
        if not args.card.is_file():
            raise CSPSRInputError(f'{args.card} does not exist: write the card with the generated block\'s markers '
                                  '(cspsr_arch.release.card.BEGIN / END) first.')
        args.card.write_text(update_card(args.card.read_text(), record))
        print(f'release: scores block of {args.card} regenerated')
    return 0


def _inputs(args: argparse.Namespace) -> int:
    from cspsr_arch.release.country import camera_inputs, country_test_split, write_inputs
    split = country_test_split(args.country, args.keys, args.out / 'split')
    for sample in camera_inputs(split):
        vis, nir, gt = write_inputs(sample, args.out)
        print(f'inputs: {vis.name} {nir.name} ({sample.lq.shape[-1]}x{sample.lq.shape[-2]}), {gt.name}')
    return 0


def _figure(args: argparse.Namespace) -> int:
    from cspsr_arch.release.figure import bicubic, crop_figure, read_bgr
    images = {'bicubic': bicubic(read_bgr(args.lr), args.scale)}
    for item in args.sr:
        label, _, path = item.partition('=')
        if not (label and path):
            raise CSPSRInputError(f'--sr {item!r}: expected LABEL=FILE, e.g. CSPSR=out/a.png.')
        images[label] = read_bgr(Path(path))
    gt = read_bgr(args.gt) if args.gt else None
    box = tuple(args.box) if args.box else None
    info = crop_figure(images, args.out, args.scale, args.size, args.zoom, gt, box)
    print(f'figure: {args.out} ({args.out.stat().st_size / 1e3:.0f} kB), crop {info["box"]}'
          + (', crop PSNR ' + ', '.join(f'{k} {v:.2f} dB' for k, v in info['psnr'].items()) if info['psnr'] else '')
          + ', grid / phase modulation at the edges of the whole image: '
          + ', '.join(f'{k} {v[0]:.2f} / {v[1]:.2f}' for k, v in info['grid'].items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``tools/release_weights.py``."""
    from cspsr_arch.benchmark.paths import DEFAULT_COUNTRY, ROOT
    parser = argparse.ArgumentParser(prog='release_weights.py', description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    rel = sub.add_parser('release', help='write released weights, their options, the record and the card block')
    rel.add_argument('--benchmark', type=Path, default=ROOT / 'results' / 'benchmark' / 'release',
                     help='the finished benchmark folder (report.json, options/, experiments/)')
    rel.add_argument('--release', nargs='+', default=list(RELEASES), metavar='ROW=RUN=OUT',
                     help='table row = run = output path without suffix')
    rel.add_argument('--record', type=Path, default=Path('weights/release_report.json'),
                     help='JSON record of what the card states')
    rel.add_argument('--card', type=Path, default=Path('weights/README.md'),
                     help='model card whose generated block to rewrite')
    inp = sub.add_parser('inputs', help='camera-protocol LR inputs of country test keys, as PNG')
    inp.add_argument('--country', type=Path, default=DEFAULT_COUNTRY, help='folder of the EPFL country pairs')
    inp.add_argument('--keys', nargs='+', required=True, help='test keys, e.g. 0046 0070')
    inp.add_argument('--out', type=Path, required=True, help='output folder')
    fig = sub.add_parser('figure', help='crop figure: bicubic, outputs, ground truth')
    fig.add_argument('--lr', type=Path, required=True, help='the LR VIS image (bicubic is computed from it)')
    fig.add_argument('--sr', nargs='+', required=True, metavar='LABEL=FILE', help='outputs, in panel order')
    fig.add_argument('--gt', type=Path, default=None, help='ground truth, if there is one')
    fig.add_argument('--scale', type=int, default=4)
    fig.add_argument('--size', type=int, default=80, help='crop side in output pixels')
    fig.add_argument('--zoom', type=int, default=3, help='enlargement (pixel repetition)')
    fig.add_argument('--box', type=int, nargs=2, default=None, metavar=('TOP', 'LEFT'),
                     help='crop position; default: the most detailed window of the ground truth (else bicubic)')
    fig.add_argument('--out', type=Path, required=True, help='PNG to write')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (2 after a one-line message for bad input)."""
    import sys

    import cspsr_arch  # noqa: F401  (registers the archs)
    args = build_parser().parse_args(argv)
    try:
        return {'release': _release, 'inputs': _inputs, 'figure': _figure}[args.command](args)
    except CSPSRInputError as err:
        print(f'release_weights: error: {err}', file=sys.stderr)
        return 2
