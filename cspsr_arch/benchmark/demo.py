"""``make demo``: generate the embedded synthetic data, train a small CSPSR and a VIS-only network of the
same design on the CPU, and show what the NIR is worth.

Steps (each reuses what an earlier run finished):

1. the synthetic cross-spectral stereo set is written to ``datasets/demo``
   (:func:`cspsr_arch.prep.synthetic.build.make_dataset`);
2. ``basicsr train --auto_resume`` trains each option file (BasicSR's own pipeline), eager or through
   ``torch.compile``, whichever a few timed training steps of each network show to finish first on this
   machine (``--compile auto``; the figures go to ``<out>/training.json``);
3. bicubic interpolation, each trained network, and CSPSR with its NIR replaced by zeros are scored on
   the test split of the first option file (its ``degradation`` block fixes the camera protocol's test
   inputs per image), with BasicSR's ``calculate_psnr`` / ``calculate_ssim`` (RGB, border = scale);
4. a table is printed and written to ``<out>/metrics.json``; the exit status is 1 when CSPSR beats
   bicubic by less than ``--min-gain`` dB.
"""
import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from cspsr_arch.benchmark.evaluation import build_trained, mean_scores, score_loader
from cspsr_arch.prep.split import META_INFO

DEFAULT_OPTS = ('options/demo_CSPSR_x4.yml', 'options/demo_VISonly_x4.yml')


def ensure_data(data_dir: Path, scale: int, seed: int) -> None:
    """Generate the synthetic set unless both splits are complete and were made with these settings.

    The HR VIS is the clean scene (``vis_effects=False``): the camera protocol of the demo's options degrades
    the LR inputs itself, and its ground truth is what a good camera would record.
    """
    settings = {'scales': [scale], 'seed': seed, 'vis_effects': False}
    stamp = data_dir / 'demo_data.json'
    if (all((data_dir / split / META_INFO).is_file() for split in ('train', 'test'))
            and stamp.is_file() and json.loads(stamp.read_text()) == settings):
        print(f'[demo] data: reusing {data_dir}')
        return
    from cspsr_arch.prep.synthetic.build import make_dataset
    print(f'[demo] data: generating the synthetic cross-spectral stereo set in {data_dir} ...')
    keys = make_dataset(str(data_dir), scales=(scale, ), seed=seed, vis_effects=False, overwrite=True)
    stamp.write_text(json.dumps(settings) + '\n')
    print(f"[demo] data: {len(keys['train'])} train / {len(keys['test'])} test scenes")


COMPILE_FLOOR_S = 10.0  # eager training shorter than this is not probed compiled: even a compile from inductor's cache took 6 s


def choose_mode(total_iter: int, eager_it_s: float, compiled: Optional[Dict[str, float]]) -> str:
    """``'compiled'`` when training through ``torch.compile`` is expected to finish first, else ``'eager'``.

    The compiled run pays its compilation again (from inductor's cache, which the probe filled, so in
    practice less than the probe's own compile time); the probe's warm-up time is the bound used here.

    Args:
        total_iter: Iterations of the training run.
        eager_it_s: Eager iterations per second (probe).
        compiled: ``it_s`` and ``warmup_s`` (compilation included) of the compiled probe; None when it
            was not run or no compiler is present.
    """
    if compiled is None:
        return 'eager'
    eager_s = total_iter / eager_it_s
    compiled_s = total_iter / compiled['it_s'] + compiled['warmup_s']
    return 'compiled' if compiled_s < eager_s else 'eager'


def probe_training_speed(opt: dict, log=print) -> Dict[str, object]:
    """Measure eager (and, for runs long enough, compiled) training speed of an option file on this machine.

    Iterations of the model's own ``optimize_parameters`` on random batches of the run's size
    (:func:`cspsr_arch.benchmark.throughput.training_throughput`); the compiled probe also fills
    inductor's on-disk cache, so the training run that follows compiles faster.

    Returns:
        dict: ``eager_it_s``, ``compiled_it_s`` and ``compile_s`` (None where not measured) and ``mode``.
    """
    import torch

    from cspsr_arch.benchmark.throughput import training_throughput
    from cspsr_arch.engine.compile import compiler_problem
    total_iter = opt['train']['total_iter']
    eager = training_throughput(opt, iters=12, warmup=2)
    compiled = None
    problem = compiler_problem(torch.device('cpu'))
    if problem is not None:
        log(f'[demo] {opt["name"]}: eager training ({problem})')
    elif total_iter / eager['it_s'] >= COMPILE_FLOOR_S:
        log(f'[demo] {opt["name"]}: timing a few compiled training steps (compiling once; later runs reuse the cache) ...')
        compiled = training_throughput(opt, iters=12, warmup=2, compiled=True)
    mode = choose_mode(total_iter, eager['it_s'], compiled)
    figures = {'eager_it_s': eager['it_s'], 'compiled_it_s': compiled and compiled['it_s'],
               'compile_s': compiled and compiled['warmup_s'], 'mode': mode}
    log(f"[demo] {opt['name']}: eager {eager['it_s']:.1f} it/s"
        + (f", compiled {compiled['it_s']:.1f} it/s after {compiled['warmup_s']:.0f} s of compiling" if compiled else '')
        + f' -> {mode} training of {total_iter} iterations')
    return figures


def train(opt_file: Path, compile_net: bool = False) -> float:
    """Run ``basicsr train`` (resuming a finished or interrupted earlier run); return the wall time.

    Args:
        opt_file: Training options.
        compile_net: Train through ``torch.compile`` (``train: compile: true``).
    """
    from cspsr_arch.engine.pipeline import run
    start = time.time()
    run('train', ['-opt', str(opt_file), '--auto_resume'] + (['--force_yml', 'train:compile=true'] if compile_net else []))
    return time.time() - start


def _checkpoint(opt: dict) -> Path:
    """Where ``basicsr train`` left the final weights of an option file (under the working directory)."""
    return Path.cwd() / 'experiments' / opt['name'] / 'models' / 'net_g_latest.pth'


def test_loader(opt: dict):
    """Batch-1 loader of an option file's ``val`` data set (with its camera degradation, fixed per key)."""
    from basicsr.data import build_dataloader, build_dataset
    val_opt = dict(opt['datasets']['val'], phase='val', scale=opt['scale'])
    return build_dataloader(build_dataset(val_opt), val_opt, num_gpu=0, dist=False), val_opt['name']


def evaluate(opts: Sequence[dict], out_dir: Path) -> Dict[str, Dict[str, float]]:
    """Mean PSNR/SSIM of bicubic, each trained model, and the first (CSPSR) with its NIR zeroed.

    Images go to ``<out_dir>/visualization/<test set>/<key>_<row>.png``.
    """
    loader, name = test_loader(opts[0])
    scale, image_dir = opts[0]['scale'], out_dir / 'visualization' / name
    results = {'bicubic': mean_scores(score_loader(None, loader, scale, image_dir, 'bicubic'))}
    for i, opt in enumerate(opts):
        row = _row(opt)
        model = build_trained(opt, _checkpoint(opt))
        results[row] = mean_scores(score_loader(model, loader, scale, image_dir, row))
        if i == 0:
            results[f'{row} (NIR zeroed)'] = mean_scores(score_loader(model, loader, scale, None, nir='zero'))
    return results


def _row(opt: dict) -> str:
    net = opt['network_g']
    return 'VIS-only' if net.get('branches') == 'vis' else net['type']


def print_table(results: Dict[str, Dict[str, float]], lines: List[str]) -> None:
    """Print the PSNR/SSIM table and the locations of the outputs."""
    print('\n' + '=' * 60)
    print(f"{'method':<22} {'PSNR (dB)':>10} {'SSIM':>8}")
    for name, values in results.items():
        print(f"{name:<22} {values['psnr']:>10.2f} {values['ssim']:>8.4f}")
    print('=' * 60)
    for line in lines:
        print(line)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; returns 0, or 1 if CSPSR does not beat bicubic by ``--min-gain`` dB."""
    parser = argparse.ArgumentParser(prog='demo', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--opt', nargs='+', default=list(DEFAULT_OPTS),
                        help='training options: CSPSR first (its test split is used), then comparison networks')
    parser.add_argument('--data', default='datasets/demo', help='where the synthetic data set goes')
    parser.add_argument('--out', default='results/demo', help='where images and metrics.json go')
    parser.add_argument('--seed', type=int, default=0, help='seed of the synthetic data set')
    parser.add_argument('--compile', choices=('auto', 'yes', 'no'), default='auto',
                        help='train through torch.compile: auto (default) times a few eager and compiled training '
                        'steps of each network here and trains the way expected to finish first; yes / no force it')
    parser.add_argument('--min-gain', type=float, default=1.0,
                        help='exit with status 1 when CSPSR beats bicubic by less than this (dB)')
    args = parser.parse_args(argv)
    start = time.time()
    import cspsr_arch  # noqa: F401  (registration)
    from cspsr_arch.engine.options import load_options
    opts = [load_options(f) for f in args.opt]
    data_dir, out_dir = Path(args.data), Path(args.out)
    ensure_data(data_dir, opts[0]['scale'], args.seed)
    speed, train_times = {}, {}
    for opt_file, opt in zip(args.opt, opts):
        row = _row(opt)
        if args.compile == 'auto' and not _checkpoint(opt).is_file():  # a finished run is not trained again
            speed[row] = probe_training_speed(opt)
            compile_net = speed[row]['mode'] == 'compiled'
        else:
            compile_net = args.compile == 'yes'
        train_times[row] = train(Path(opt_file), compile_net)
        speed.setdefault(row, {})['train_s'] = train_times[row]
    results = evaluate(opts, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'metrics.json').write_text(json.dumps(results, indent=2) + '\n')
    (out_dir / 'training.json').write_text(json.dumps(speed, indent=2) + '\n')
    main_row = _row(opts[0])
    gain = results[main_row]['psnr'] - results['bicubic']['psnr']
    lines = [f"Demo test split: {data_dir / 'test'} (x{opts[0]['scale']}, RGB, border {opts[0]['scale']}); "
             f'{main_row} - bicubic = {gain:+.2f} dB']
    for row in results:
        if row not in ('bicubic', main_row):
            lines.append(f"{main_row} - {row} = {results[main_row]['psnr'] - results[row]['psnr']:+.2f} dB")
    lines += [f'metrics:    {out_dir / "metrics.json"}',
              f'images:     {out_dir / "visualization"}/ (each network and bicubic)',
              f"checkpoints: experiments/<name>/models/net_g_latest.pth ({', '.join(o['name'] for o in opts)})",
              'training:   ' + ', '.join(f'{row} {t / 60:.1f} min' for row, t in train_times.items())
              + f'; demo total {(time.time() - start) / 60:.1f} min']
    print_table(results, lines)
    if gain < args.min_gain:
        print(f'[demo] {main_row} beats bicubic by {gain:.2f} dB, less than the {args.min_gain:.2f} dB expected.')
        return 1
    return 0
