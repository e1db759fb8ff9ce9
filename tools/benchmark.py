#!/usr/bin/env python
"""Benchmark CSPSR against EDSR, RCAN, HAT and a concatenation baseline on the same data, one command.

What it does, step by step, and where each step lives: :mod:`cspsr_arch.benchmark.pipeline`.

Presets: ``--preset quick`` (tiny data and networks, a few minutes on a CPU; what the test runs), ``--preset cpu``
(about an hour on a 2-core CPU per protocol and seed), ``--preset paper`` (the option files' paper settings; for a GPU).

Usage::

    python tools/benchmark.py --preset quick [--name NAME] [--out results/benchmark] [--models EDSR CSPSR ...]
                              [--ablations] [--real ../shared/data/real_rgbnir] [--threads N] [--train-only]
                              [--iters N] [--network MODEL.KEY=VALUE ...] [--protocol bicubic|camera|both]
                              [--seeds N] [--seeds-of MODEL=N ...] [--country ../shared/data/nirscene_country]
                              [--datasets synthetic country semisynthetic country_registered]
                              [--country-train keep|skip|register]

``--protocol both --seeds 2`` trains every model under both protocols, twice each: the tables give the mean and
spread over seeds, paired per-image differences and the NIR-zeroed / NIR-swapped diagnostics.

``--datasets country country_registered --country-train register --models EDSR ConcatNIR CSPSR CSPSR_HRNIR``
trains on real country pairs only (registered by the tool where they were not) and scores every model on the
12-key test split and on the registered test split: neither split's photographs are trained on.

``--iters`` and ``--network`` (e.g. ``--name cpu_instance --network CSPSR.norm=instance``) change the preset for
one benchmark, to try a variant on the same data and budget; the report lists the networks as trained. A named
CSPSR variant with an option file of its own is a row beside CSPSR instead: ``--models CSPSR CSPSR_additive``.

A second process started with the same arguments and ``--train-only`` shares the training (runs are
locked while trained, see ``cspsr_arch.benchmark.training``) and stops without evaluating.
"""
import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from cspsr_arch.benchmark.data import DATASETS, DEFAULT_DATASETS, TRAIN_POLICIES
from cspsr_arch.benchmark.paths import DEFAULT_COUNTRY, DEFAULT_REAL
from cspsr_arch.benchmark.pipeline import run_benchmark


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point."""
    from cspsr_arch.benchmark.presets import (EXTRA_MODELS, PEER_MODELS, PRESETS, ROW_MODELS, SINGLE_IMAGE_MODELS,
                                              SR_MODELS, VARIANT_MODELS, with_networks)
    from cspsr_arch.errors import CSPSRInputError
    from cspsr_arch.benchmark.external import parse_external
    from cspsr_arch.helptext import split_doc
    argv = list(sys.argv[1:] if argv is None else argv)
    description, epilog = split_doc(__doc__)
    p = argparse.ArgumentParser(description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--preset', choices=sorted(PRESETS), required=True, help='budget and sizes (see below)')
    p.add_argument('--name', default=None, help='benchmark name (folder under --out); default: the preset name')
    p.add_argument('--out', default='results/benchmark', help='where benchmarks go (default: results/benchmark)')
    p.add_argument('--models', nargs='+', default=None, metavar='MODEL',
                   choices=ROW_MODELS,
                   help=f'models of the main table, among {", ".join(SR_MODELS)} (default: all, and CSPSR_given if '
                   f'the preset has it), {", ".join(EXTRA_MODELS)}, the named CSPSR variants '
                   f'{", ".join(VARIANT_MODELS)}, the prior-guided peers {", ".join(PEER_MODELS)} '
                   f'and the further single-image networks {", ".join(SINGLE_IMAGE_MODELS)}')
    p.add_argument('--ablations', action='store_true', help='also train the Table 4 variants (x4)')
    p.add_argument('--real', default=str(DEFAULT_REAL), help=f'folder of real *_rgb/*_nir pairs (default: {DEFAULT_REAL})')
    p.add_argument('--country', default=str(DEFAULT_COUNTRY),
                   help=f'folder of the EPFL country pairs, the main real test set (default: {DEFAULT_COUNTRY})')
    p.add_argument('--protocol', choices=['bicubic', 'camera', 'both'], default='bicubic',
                   help='bicubic LR inputs (the paper\'s), camera-degraded ones, or both (a table each)')
    p.add_argument('--seeds', type=int, default=1, help='training runs of every model (mean +- std in the tables)')
    p.add_argument('--seeds-of', nargs='+', default=[], metavar='MODEL=N',
                   help='train these models another number of times than --seeds, e.g. RCAN=1 HAT=1')
    p.add_argument('--protocol-models', nargs='+', default=[], metavar='PROTOCOL=M1,M2',
                   help='train and test only these of --models under that protocol, e.g. camera=EDSR,CSPSR (a row '
                   'missing from a protocol is shown as "-" in its tables)')
    p.add_argument('--datasets', nargs='+', default=list(DEFAULT_DATASETS), choices=DATASETS, metavar='SET',
                   help=f'data sets to train and test on, among {", ".join(DATASETS)} (default: '
                   f'{" ".join(DEFAULT_DATASETS)}; country alone trains '
                   'on real NIR only; country_registered tests on the registered split of the country pairs, and '
                   'with country keeps both test splits out of training)')
    p.add_argument('--external', nargs='+', default=[], metavar='NAME=PATH',
                   help='also score single-image SR checkpoints of other projects (any architecture the spandrel '
                   'package recognises: SwinIR, HAT, RCAN, ESRGAN, ...) on the same test splits and protocols, as '
                   'rows named NAME, without training them; their scale must be the preset\'s')
    p.add_argument('--country-train', choices=TRAIN_POLICIES, default=None,
                   help="the country pairs' misregistered training pairs: keep them, skip them, or register them "
                   "(the NIR warped onto the VIS); their test photographs stay as taken (default: the preset's, keep)")
    p.add_argument('--iters', type=int, default=None, help="override the preset's training iterations")
    p.add_argument('--network', nargs='+', default=[], metavar='MODEL.KEY=VALUE',
                   help="change the preset's network options, e.g. CSPSR.norm=instance CSPSR.num_dmf=6 (CSPSR's apply "
                        "to CSPSR_given too); use with another --name")
    p.add_argument('--train-only', action='store_true',
                   help='train and stop (no evaluation, no report): a helper process sharing the training of a '
                        'benchmark that another process runs with the same arguments')
    p.add_argument('--compile', action='store_true',
                   help='torch.compile the networks for the evaluation, and also report compiled training throughput')
    p.add_argument('--threads', type=int, default=None,
                   help='CPU threads of torch (default: its own choice, all cores); 1 is faster on a busy machine')
    args = p.parse_args(argv)
    if args.threads:
        os.environ['OMP_NUM_THREADS'] = str(args.threads)  # also for the memory-measuring subprocesses
        import torch
        torch.set_num_threads(args.threads)
    import cspsr_arch  # noqa: F401  (registration)
    preset = PRESETS[args.preset]
    if args.iters:
        preset = dataclasses.replace(preset, iters=args.iters)
    start = time.time()
    try:
        preset = with_networks(preset, args.network)
        models = args.models or [*SR_MODELS, *(['CSPSR_given'] if preset.given_reference else [])]
        model_seeds = {}
        for item in args.seeds_of:
            model, equals, count = item.partition('=')
            if not (equals and count.isdigit() and int(count) >= 1 and model in models):
                raise CSPSRInputError(f'--seeds-of {item!r}: expected MODEL=N with N >= 1 and MODEL among {models}.')
            model_seeds[model] = int(count)
        protocols = ['bicubic', 'camera'] if args.protocol == 'both' else [args.protocol]
        protocol_models = {}
        for item in args.protocol_models:
            protocol, equals, names = item.partition('=')
            subset = [m for m in names.split(',') if m]
            if not (equals and protocol in protocols and subset and set(subset) <= set(models)):
                raise CSPSRInputError(f'--protocol-models {item!r}: expected PROTOCOL=M1,M2 with PROTOCOL among '
                                      f'{protocols} (see --protocol) and the models among {models}.')
            protocol_models[protocol] = subset
        report = run_benchmark(preset, args.name or preset.name, Path(args.out), models, args.ablations,
                               Path(args.real) if args.real else None,
                               'python tools/benchmark.py ' + ' '.join(a for a in argv if a != '--train-only'),
                               train_only=args.train_only, country=Path(args.country) if args.country else None,
                               protocols=protocols, protocol_models=protocol_models,
                               seeds=args.seeds, compiled=args.compile, model_seeds=model_seeds,
                               datasets=args.datasets, country_train=args.country_train,
                               external=parse_external(args.external))
    except CSPSRInputError as err:
        print(f'benchmark: error: {err}', file=sys.stderr)
        return 2
    root = Path(args.out) / (args.name or preset.name)
    if report is None:
        print(f'\ntrained: {root / "experiments"} ({(time.time() - start) / 60:.1f} min)')
        return 0
    for protocol, by_dataset in report['results'].items():
        for dataset, by_scale in by_dataset.items():
            for scale, rows in by_scale.items():
                print(f'\n{protocol} {dataset} {scale}: ' + '  '.join(f"{k} {v['psnr']:.2f}" for k, v in rows.items()))
    for t in report['targets']:
        print(f"{t['what']}: {t['value']} (goal {t['goal']}) {'met' if t['met'] else 'NOT met'}")
    print(f'\nreport: {root / "report.md"} ({(time.time() - start) / 60:.1f} min)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
