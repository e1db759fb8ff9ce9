"""``basicsr infer``: super-resolve VIS/NIR pairs with a trained CSPSR (or VIS images with a VIS-only
network such as EDSR) and write PNGs.

::

    basicsr infer -opt options/train_CSPSR_x4.yml --model experiments/CSPSR_x4/models/net_g_latest.pth \\
        --vis LR/VIS --nir LR/NIR --out results/infer [--tile 256 --tile-overlap 16] [--ensemble] [--bits 16] \\
        [--compile]
    basicsr infer -opt weights/EDSR_country_camera_x4.yml --model weights/EDSR_country_camera_x4.pth \\
        --vis LR/VIS --out results/infer_edsr
"""
import argparse
import time
import torch
from tqdm import tqdm

from cspsr_arch.archs.precision import half_dtype
from cspsr_arch.errors import CSPSRInputError


def add_infer_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``basicsr infer``."""
    parser.add_argument('-opt', default=None, help='options file that built the model (its network_g is used); '
                        'leave it out for a single-image SR checkpoint of another project that the spandrel package '
                        'recognises (SwinIR, HAT, RCAN, ESRGAN, SPAN, ...: --model alone)')
    parser.add_argument('--model', default=None,
                        help='checkpoint (.pth); default: path:pretrain_network_g of the options')
    parser.add_argument('--vis', required=True, help='LR VIS (left view) image, or folder of them')
    parser.add_argument('--nir', default=None, help='LR NIR (right view) image, or folder of them (matched by name); '
                        'needed by CSPSR models, not read by VIS-only ones (EDSR, RCAN, HAT); nir_scale x the VIS '
                        'size for networks with network_g:nir_scale')
    parser.add_argument('--disp', default=None,
                        help='left disparity (16-bit PNG, round(d*256), LR pixels) or folder; for cvm: given models')
    parser.add_argument('--out', required=True, help='output folder (or a .png file for a single pair)')
    parser.add_argument('--scale', type=int, default=None, help="scale factor; must be the model's (default)")
    parser.add_argument('--tile', type=int, default=0,
                        help='tile side in LR pixels (0: whole image); bounds the memory on large inputs. A pass that '
                        'does not fit in memory is redone in tiles of 256, 128, then 64, with a line saying so')
    parser.add_argument('--tile-overlap', type=int, default=16, help='context margin around each tile, LR pixels')
    parser.add_argument('--ensemble', action='store_true', help='average with the vertically flipped pair')
    parser.add_argument('--bits', type=int, choices=[8, 16], default=None,
                        help='output bit depth (default: that of the VIS input)')
    parser.add_argument('--save-nir', action='store_true', help='also write the super-resolved NIR (<key>_nir.png)')
    parser.add_argument('--param-key', choices=['params', 'params_ema'], default=None,
                        help='weights to use (default: params_ema when the checkpoint has it, else params)')
    parser.add_argument('--device', default='auto', help='auto (cuda when available), cpu, cuda, cuda:1 ...')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the network (inductor; one compilation of about a minute for CSPSR(), '
                             'then faster images and tiles of any size); eager mode with a message when no compiler')
    parser.add_argument('--half', action='store_true',
                        help='half precision (autocast): bf16 on a CPU with bf16 instructions (avx512_bf16 or AMX), '
                        'bf16 or fp16 on a GPU; the cross-view matching and the output stay in fp32. Refused on CPUs '
                        'without bf16 instructions, where it runs slower than fp32')
    parser.add_argument('--quiet', action='store_true', help='no progress bars (they show on a terminal only)')


def _device(name: str) -> torch.device:
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CSPSRInputError(f'--device {name!r} is not a device; use auto, cpu or cuda[:N].') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise CSPSRInputError(f'--device {name}: no GPU is visible; use --device cpu.')
    return device


AUTO_TILES = (256, 128, 64)
"""Tile sides (LR pixels) ``basicsr infer`` falls back to, in turn, when a pass does not fit in memory."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is PyTorch running out of memory (CUDA's ``OutOfMemoryError``, or the CPU allocator's
    ``RuntimeError``)."""
    if isinstance(error, getattr(torch, 'OutOfMemoryError', ())):
        return True
    text = str(error)
    # oneDNN reports a failed allocation of its workspace as a primitive it could not create
    return isinstance(error, RuntimeError) and any(sign in text for sign in (
        "can't allocate memory", 'out of memory', 'could not create a primitive'))


def super_resolve_fitting(run, tile: int, name: str, size: str, log=print):
    """``(run(tile), tile used)`` (tile 0: untiled), falling back to smaller tiles while it runs out of memory.

    A pass that does not fit is retried in tiles of :data:`AUTO_TILES` smaller than the one that failed, with a
    line saying so; when even the smallest does not fit, a one-line error names ``--tile``.

    Args:
        run: ``run(tile) -> result``.
        tile: The ``--tile`` asked for (0: the whole image).
        name: The input file, for the messages.
        size: Its size (``WxH``), for the messages.
        log: Where the fallback line goes.
    """
    while True:
        try:
            return run(tile), tile
        except RuntimeError as error:
            if not is_out_of_memory(error):
                raise
            reason = str(error).strip().splitlines()[-1][:160]
            del error  # its traceback holds the failed pass's tensors
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        smaller = [t for t in AUTO_TILES if not tile or t < tile]
        if not smaller:
            raise CSPSRInputError(f'{name} ({size}) does not fit in memory even in tiles of {tile} LR pixels '
                                  f'({reason}); free memory, or pass a smaller --tile (at least 16).')
        log(f'basicsr infer: {name} ({size}) does not fit in memory '
            f'{"in tiles of " + str(tile) if tile else "at once"}; super-resolving it in tiles of {smaller[0]} LR '
            f'pixels (--tile {smaller[0]}).')
        tile = smaller[0]


def run_infer(args: argparse.Namespace) -> int:
    """Run ``basicsr infer`` with parsed arguments; returns the exit status (errors raise CSPSRInputError)."""
    from cspsr_arch.infer.model import load_inference_model, network_options
    from cspsr_arch.infer.pairs import discover_pairs
    from cspsr_arch.infer.vis_only import reads_nir

    if args.tile < 0 or args.tile_overlap < 0:
        raise CSPSRInputError('--tile and --tile-overlap must be >= 0.')
    device = _device(args.device)
    if args.opt is None:
        return _run_external(args, device)
    arch = network_options(args.opt)['type']
    if reads_nir(arch) and not args.nir:
        raise CSPSRInputError(f'{args.opt} builds a {arch}, which super-resolves the VIS image with the help of a NIR '
                              'image of the same scene: pass --nir (the LR NIR image, or a folder of them matched by '
                              'name). Without a NIR image, use a VIS-only model (e.g. -opt weights/EDSR_country_camera_'
                              'x4.yml --model weights/EDSR_country_camera_x4.pth).')
    if not reads_nir(arch) and args.disp:
        raise CSPSRInputError(f'--disp is only read by CSPSR models with cvm: given; {args.opt} builds network_g:type '
                              f'{arch}, which reads the VIS image only. Remove --disp.')
    pairs = discover_pairs(args.vis, args.nir, args.disp)  # input errors before the model is loaded
    if not reads_nir(arch) and args.nir:
        print(f'basicsr infer: {arch} reads the VIS image only; the NIR images of --nir are not used.')
        pairs = [pair._replace(nir=None) for pair in pairs]
    net = load_inference_model(args.opt, args.model, args.param_key, args.scale, device)
    return _super_resolve_all(args, net, pairs, device)


def _run_external(args: argparse.Namespace, device: torch.device) -> int:
    """``basicsr infer --model any.pth`` without ``-opt``: a checkpoint of another project, VIS only."""
    from cspsr_arch.infer.external import load_external_model
    from cspsr_arch.infer.pairs import discover_pairs
    if not args.model:
        raise CSPSRInputError('Pass -opt (the options file the model trained with) and --model, or --model alone for '
                              'a single-image SR checkpoint of another project (SwinIR, HAT, RCAN, ESRGAN, ...).')
    if args.disp:
        raise CSPSRInputError('--disp is only read by CSPSR models with cvm: given (with -opt); remove --disp.')
    pairs = discover_pairs(args.vis, args.nir, None)  # input errors before the model is loaded
    net = load_external_model(args.model, device, args.scale)
    if args.nir:
        print(f'basicsr infer: {net.arch} reads the VIS image only; the NIR images of --nir are not used.')
        pairs = [pair._replace(nir=None) for pair in pairs]
    return _super_resolve_all(args, net, pairs, device)


def _super_resolve_all(args: argparse.Namespace, net, pairs, device: torch.device) -> int:
    """Super-resolve every pair with a loaded network and write the PNGs (the options are checked first)."""
    from cspsr_arch.infer.pairs import load_pair, output_paths, write_png
    from cspsr_arch.infer.tiling import super_resolve
    opt = args.opt or args.model
    precision = half_dtype(device) if args.half else None
    if net.cvm == 'given' and not args.disp:
        raise CSPSRInputError(f"{opt} builds a CSPSR with cvm: given, which warps the NIR image by a disparity "
                              "map it does not compute: pass --disp (the left disparity, 16-bit PNG round(d*256) in LR "
                              "pixels), or use a model trained with cvm: learned.")
    if args.disp and net.cvm != 'given':
        raise CSPSRInputError(f'--disp is only read by cvm: given models; this one has cvm: {net.cvm}. Remove --disp.')
    if args.compile:
        from cspsr_arch.engine.compile import compile_network
        net = compile_network(net, device, log=lambda msg: print(f'basicsr infer: {msg}'))
    start = time.time()
    hide = True if args.quiet else None  # None: tqdm shows the bars on a terminal only
    tiles = tqdm(total=1, unit='tile', leave=False, disable=hide, position=1) if args.tile else None
    fallback = 0  # the largest tile side a pass fell back to
    for pair in tqdm(pairs, unit='image', disable=hide, position=0):
        loaded = load_pair(pair, device, getattr(net, 'nir_scale', 1))
        bits = args.bits or loaded.bits

        def run(tile: int, loaded=loaded, bits=bits):
            with torch.autocast(device.type, dtype=precision or torch.bfloat16, enabled=precision is not None):
                return super_resolve(net, loaded.vis, loaded.nir, loaded.disp, tile=tile or None,
                                     overlap=args.tile_overlap, ensemble=args.ensemble, bits=bits,
                                     with_nir=args.save_nir, progress=tiles)

        size = f'{loaded.vis.shape[-1]}x{loaded.vis.shape[-2]}'
        result, used = super_resolve_fitting(run, args.tile, pair.vis, size, log=tqdm.write)
        fallback = max(fallback, used) if used != args.tile else fallback
        paths = output_paths(args.out, pair.key, len(pairs) == 1)
        write_png(paths['sr'], result.sr)
        if result.nir_sr is not None:
            write_png(paths['nir'], result.nir_sr)
    if tiles is not None:
        tiles.close()
    where = args.out  # the folder, or the file of a single pair
    print(f'basicsr infer: wrote {len(pairs)} image(s) to {where} ({getattr(net, "arch", type(net).__name__)} x{net.upscale}, '
          f'{"tiles of " + str(args.tile) if args.tile else "untiled"}'
          + (f', tiles of {fallback} where memory was short' if fallback else '')
          + (f', {str(precision).replace("torch.", "")}' if precision else '') + f', {time.time() - start:.1f} s)')
    return 0

