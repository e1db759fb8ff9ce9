"""The ``basicsr`` console script: ``basicsr train|test|infer ...`` (argument parsing and dispatch).

``train`` and ``test`` run BasicSR's own pipelines with cspsr's classes registered and its patches in
place (:func:`cspsr_arch.engine.pipeline.run`; the patches and why each exists:
:mod:`cspsr_arch.engine.patches`). ``infer`` super-resolves pairs of any size with a trained model
(:mod:`cspsr_arch.infer.command`). Bad input ends with a one-line message and exit status 2, a diverged
training with 3, a checkpoint that cannot be written with 4.
"""
import argparse
import sys
from typing import List, Optional

from cspsr_arch.engine.checkpoint import CheckpointSaveError, TrainingDiverged
from cspsr_arch.engine.pipeline import run
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.infer.command import add_infer_arguments, run_infer

INFER_EXAMPLES = """examples:
  the released CSPSR on your LR pair (NIR of the same size, or of the right camera of a stereo rig):
    basicsr infer -opt weights/CSPSR_country_camera_x4.yml --model weights/CSPSR_country_camera_x4.pth \\
        --vis my_rgb.png --nir my_nir.png --out results/infer
  a VIS-only model, folders of images, large images in tiles:
    basicsr infer -opt weights/EDSR_country_camera_x4.yml --model weights/EDSR_country_camera_x4.pth \\
        --vis LR/VIS --out results/edsr --tile 256
  your own model: the options as it trained (experiments/<name>/<file>.yml) and a checkpoint
    basicsr infer -opt experiments/CSPSR_x4_Custom/train_CSPSR_custom_x4.yml \\
        --model experiments/CSPSR_x4_Custom/models/net_g_latest.pth \\
        --vis datasets/Custom/test/LR_bicubic/X4/VIS --nir datasets/Custom/test/LR_bicubic/X4/NIR --out results/custom
"""

DESCRIPTION = """BasicSR with the cspsr plugin (CSPSR: NIR-guided super-resolution).

sub-commands:
  train   train a model:  basicsr train -opt options/train_CSPSR_x4.yml [--auto_resume] [--debug]
                                        [--force_yml k=v ...] [--launcher none|pytorch|slurm]
          experiments/<name>/ (models, training states, log) and tb_logger/ go under the current directory.
          Several processes: torchrun --nproc_per_node=N -m cspsr_arch train -opt ... --launcher pytorch
  test    evaluate a model: basicsr test -opt options/test_CSPSR_x4.yml
          results/<name>/ (metrics log, images) goes under the current directory.
  infer   super-resolve pairs of any size: basicsr infer -opt <options> --model <net_g.pth>
                                        --vis <file|folder> --nir <file|folder> --out <folder> [--tile 256]
"""

EXIT_STATUS = {CSPSRInputError: 2, TrainingDiverged: 3, CheckpointSaveError: 4}
"""Exit status of ``basicsr`` per error (any other exception is a bug and shows its traceback)."""


def _add_basicsr_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``basicsr.utils.options.parse_options`` (it parses ``sys.argv`` again itself)."""
    parser.add_argument('-opt', required=True, help='path to the option YAML file')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true', help='resume from the newest training state')
    parser.add_argument('--debug', action='store_true', help='debug mode (name gets a debug_ prefix)')
    parser.add_argument('--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--force_yml', nargs='+', default=None, metavar='KEY=VALUE',
                        help='override options, e.g. train:total_iter=1000 datasets:train:batch_size_per_gpu=8')


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of the ``basicsr`` command."""
    parser = argparse.ArgumentParser(prog='basicsr', description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', metavar='{train,test,infer}')
    sub.required = True
    _add_basicsr_arguments(sub.add_parser('train', help='train a model with BasicSR\'s train_pipeline'))
    _add_basicsr_arguments(sub.add_parser('test', help='evaluate a model with BasicSR\'s test_pipeline'))
    add_infer_arguments(sub.add_parser('infer', help='super-resolve VIS/NIR pairs of any size with a trained model',
                                       description='Super-resolve VIS/NIR pairs (or VIS images, for VIS-only '
                                       'networks) with a trained model; writes PNGs.', epilog=INFER_EXAMPLES,
                                       formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``basicsr`` console script and of ``python -m cspsr_arch``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)  # validates the command line and answers --help
    try:
        if args.command == 'infer':
            return run_infer(args)
        run(argv[0], argv[1:])
    except (CSPSRInputError, TrainingDiverged, CheckpointSaveError) as err:
        print(f'basicsr {argv[0]}: error: {err}', file=sys.stderr)
        return next(status for cls, status in EXIT_STATUS.items() if isinstance(err, cls))
    return 0


if __name__ == '__main__':
    sys.exit(main())
