"""Does a trained network take anything from its NIR input? Measurements inside the network.

The benchmark's NIR-zeroed and NIR-swapped rows say *whether* the output depends on the NIR; these
measurements say *where* the NIR's contribution is lost, for a checkpoint or for every checkpoint of a run
(the statistics over training):

* :func:`input_gradient_share`: how strongly the VIS output's loss reacts to the NIR input, relative to the
  VIS input (root mean square of the input gradients per channel). Any network with a NIR input has it,
  so CSPSR and the concatenation baseline can be compared; a VIS-only network gives 0.
* :func:`parameter_gradient_share`: the share of the VIS loss's gradient (its squared norm) that reaches the
  parameters of CSPSR's NIR branch (its shallow branch, the dynamic-kernel predictors and the NIR
  convolutions of the DMFs). Without it the NIR branch is trained by L_CSSC alone, for the NIR output.
* :func:`fusion_statistics`: per DMF module, the CSFT gates ``w_s1``, ``w_s2``, ``w_c1``, ``w_c2`` (mean and
  standard deviation), the share of the NIR term in the fused VIS feature
  ``|F'_nir w_s1 w_c2| / (|F'_nir w_s1 w_c2| + |F_vis w_s1 w_s2 w_c1|)``, how much the module changes the VIS
  features (``|F_vis,out - F_vis,in| / |F_vis,in|``), and the dynamic kernels' mean centre-tap weight
  (1: the identity filter, the NIR features pass unchanged) and mean normalised entropy (0: one tap,
  1: uniform smoothing).
* :func:`cross_view_update`: how large the term that brings the other view into the VIS features is against
  the VIS features it is added to (ratio of root mean squares, mean over the modules): NAFSSR's
  stereo cross-attention output times its scale against the left features; CSPSR's fused update against
  the VIS features (``vis_path: fused``: the update also carries the VIS term, so it bounds the NIR's part
  from above) or against the VIS residual block's output (``residual_block``, ``additive``).

The input is one validation batch (never the test split). Formulas are those of
:class:`~cspsr_arch.archs.dmf.DMF`, :class:`~cspsr_arch.archs.csft.CSFT` and
:class:`~cspsr_arch.archs.dynamic_conv.DynamicConv`, recomputed from each module's inputs with the modules'
own weights, so the fused fast path (``archs/fused_dmf.py``) does not hide them.
"""
import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cspsr_arch.archs.csft import CSFT
from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.archs.dynamic_conv import DynamicConv, apply_pixel_kernels
from cspsr_arch.archs.nafssr_arch import SCAM
from cspsr_arch.infer.vis_only import reads_nir

NIR_BRANCH_PREFIXES = ('branch_nir.', 'head_nir.')
"""Parameters of CSPSR's NIR branch outside the DMF modules (inside: ``dyconv`` and ``conv_nir``)."""


def _bare(net: nn.Module) -> nn.Module:
    return getattr(net, 'module', getattr(net, '_orig_mod', net))


def _forward_sr(net: nn.Module, lq: Tensor, lq_nir: Optional[Tensor], disp: Optional[Tensor]) -> Tensor:
    """The VIS output of a NIR-guided network (``lq_nir`` given: CSPSR and the peers) or of a VIS-only network."""
    if lq_nir is None:
        return net(lq)
    return net(lq, lq_nir, disp).sr


def input_gradient_share(net: nn.Module, lq: Tensor, gt: Tensor, lq_nir: Optional[Tensor] = None,
                         disp: Optional[Tensor] = None) -> Dict[str, float]:
    """RMS gradient of the VIS output's MSE with respect to each input, per channel.

    Args:
        net: The network, in the mode it should be measured in (normally ``eval()``).
        lq: LR VIS input (n, 3, h, w).
        gt: HR VIS ground truth.
        lq_nir: LR NIR input (n, 1, h, w), or None for a VIS-only network.
        disp: Left disparity for ``cvm='given'`` networks.

    Returns:
        dict: ``grad_vis`` and ``grad_nir`` (RMS per channel and pixel) and ``nir_to_vis`` (their ratio; 0 for a
        VIS-only network).
    """
    lq = lq.detach().clone().requires_grad_(True)
    nir = None if lq_nir is None else lq_nir.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.mse_loss(_forward_sr(net, lq, nir, disp), gt)
        inputs = [lq] if nir is None else [lq, nir]
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    grad_vis = float(grads[0].pow(2).mean().sqrt())
    grad_nir = 0.0 if nir is None or grads[1] is None else float(grads[1].pow(2).mean().sqrt())
    return {'grad_vis': grad_vis, 'grad_nir': grad_nir, 'nir_to_vis': grad_nir / grad_vis if grad_vis > 0 else 0.0}


def is_nir_parameter(name: str) -> bool:
    """Whether a parameter of :class:`CSPSR` (dual branch) belongs to the NIR branch."""
    return name.startswith(NIR_BRANCH_PREFIXES) or ('.dyconv.' in name) or ('.conv_nir.' in name)


def parameter_gradient_share(net: nn.Module, lq: Tensor, lq_nir: Tensor, gt: Tensor,
                             disp: Optional[Tensor] = None) -> Dict[str, float]:
    """Share of the VIS loss's squared gradient norm on the NIR branch's parameters (dual-branch CSPSR).

    Args:
        net: A dual-branch :class:`CSPSR`.
        lq: LR VIS input.
        lq_nir: LR NIR input.
        gt: HR VIS ground truth.
        disp: Left disparity for ``cvm='given'``.

    Returns:
        dict: ``nir_branch`` (share of the squared norm, 0..1), ``cvm`` (the same for the learned cross-view
        matching) and ``nir_branch_per_param`` / ``rest_per_param`` (mean squared gradient per parameter).
    """
    bare = _bare(net)
    if not isinstance(bare, CSPSR) or bare.branches != 'dual':
        raise ValueError('parameter_gradient_share needs a dual-branch CSPSR.')
    params = [(n, p) for n, p in bare.named_parameters() if p.requires_grad]
    with torch.enable_grad():
        loss = F.mse_loss(net(lq, lq_nir, disp).sr, gt)
        grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
    sums = {'nir': 0.0, 'cvm': 0.0, 'rest': 0.0}
    counts = {'nir': 0, 'cvm': 0, 'rest': 0}
    for (name, param), grad in zip(params, grads):
        group = 'cvm' if name.startswith('cvm_net.') else 'nir' if is_nir_parameter(name) else 'rest'
        counts[group] += param.numel()
        if grad is not None:
            sums[group] += float(grad.pow(2).sum())
    total = sum(sums.values())
    return {
        'nir_branch': sums['nir'] / total if total > 0 else 0.0,
        'cvm': sums['cvm'] / total if total > 0 else 0.0,
        'nir_branch_per_param': sums['nir'] / max(counts['nir'], 1),
        'rest_per_param': sums['rest'] / max(counts['rest'], 1),
    }


def _moments(x: Tensor) -> List[float]:
    return [float(x.mean()), float(x.std())]


def dmf_statistics(dmf: nn.Module, feat_vis: Tensor, feat_nir: Tensor) -> Dict[str, float]:
    """The statistics of one DMF module (dynamic convolution + CSFT) on its inputs; see the module docstring."""
    dyconv, csft = dmf.dyconv, dmf.fusion
    if not isinstance(dyconv, DynamicConv) or not isinstance(csft, CSFT):
        raise ValueError('fusion statistics need DMF modules with the dynamic convolution and CSFT.')
    with torch.no_grad():
        kernels = dyconv.kernels(feat_vis, feat_nir)
        nir = apply_pixel_kernels(feat_nir, kernels, dyconv.kernel_size)
        w_s1, w_s2, w_c1, w_c2, vis_n, nir_n = csft.weights(feat_vis, nir)
        part_nir = (nir_n * w_c2 * w_s1).abs().mean()
        part_vis = (vis_n * w_c1 * w_s2 * w_s1).abs().mean()
        out_vis, _ = dmf(feat_vis, feat_nir)
        taps = kernels.size(1)
        entropy = -(kernels * kernels.clamp_min(1e-12).log()).sum(1) / math.log(taps)
        stats = {'nir_share': float(part_nir / (part_nir + part_vis)) if float(part_nir + part_vis) > 0 else 0.0,
                 'vis_change': float((out_vis - feat_vis).abs().mean() / feat_vis.abs().mean().clamp_min(1e-12)),
                 'kernel_centre': float(kernels[:, taps // 2].mean()), 'kernel_entropy': float(entropy.mean())}
        for name, gate in (('w_s1', w_s1), ('w_s2', w_s2), ('w_c1', w_c1), ('w_c2', w_c2)):
            stats[f'{name}_mean'], stats[f'{name}_std'] = _moments(gate)
    return stats


def _hooked_forward(bare: nn.Module, modules, hook, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor],
                    pre: bool = False) -> None:
    """One forward pass without gradients with ``hook`` on every module of ``modules`` (a pre-hook with ``pre``)."""
    handles = [m.register_forward_pre_hook(hook) if pre else m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            bare(lq, lq_nir, disp)
    finally:
        for handle in handles:
            handle.remove()


def fusion_statistics(net: nn.Module, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None) -> List[Dict[str, float]]:
    """:func:`dmf_statistics` of every DMF module of a dual-branch CSPSR, in order, on one forward pass.

    Args:
        net: A dual-branch :class:`CSPSR` with dynamic convolution and CSFT (normally in ``eval()`` mode: the
            statistics of batch normalisation in training mode would change with the measurement).
        lq: LR VIS input.
        lq_nir: LR NIR input.
        disp: Left disparity for ``cvm='given'``.
    """
    bare = _bare(net)
    if not isinstance(bare, CSPSR) or bare.branches != 'dual':
        raise ValueError('fusion_statistics needs a dual-branch CSPSR.')
    inputs: List = []
    _hooked_forward(bare, bare.dmfs, lambda _m, args: inputs.append(tuple(a.detach() for a in args)), lq, lq_nir,
                    disp, pre=True)
    return [dmf_statistics(dmf, *args) for dmf, args in zip(bare.dmfs, inputs)]


def _rms_ratio(update: Tensor, base: Tensor) -> float:
    return float(update.pow(2).mean().sqrt() / base.pow(2).mean().sqrt().clamp_min(1e-12))


def cross_view_update(net: nn.Module, lq: Tensor, lq_nir: Tensor, disp: Optional[Tensor] = None) -> Optional[float]:
    """RMS of the cross-view term added to the VIS features over the RMS of what it is added to, mean over the
    modules (see the module docstring), on one forward pass; None for a network without such modules.

    Args:
        net: A NAFSSR or a dual-branch CSPSR (any other network gives None).
        lq: LR VIS input.
        lq_nir: LR NIR input.
        disp: Left disparity for ``cvm='given'``.
    """
    bare = _bare(net)
    if isinstance(bare, CSPSR):
        if bare.branches != 'dual':
            return None
        modules = list(bare.dmfs)
    else:
        modules = [m for m in bare.modules() if isinstance(m, SCAM)]
    if not modules:
        return None
    ratios: List[float] = []

    def measure(module: nn.Module, args: tuple, out: tuple) -> None:
        base = args[0] if isinstance(module, SCAM) or module.vis_path == 'fused' else module.block_vis(args[0])
        ratios.append(_rms_ratio(out[0] - base, base))

    _hooked_forward(bare, modules, measure, lq, lq_nir, disp)
    return float(sum(ratios) / len(ratios))


def summarise(per_module: List[Dict[str, float]]) -> Dict[str, float]:
    """The mean of each statistic over the DMF modules."""
    return {key: float(sum(m[key] for m in per_module) / len(per_module)) for key in per_module[0]}


def checkpoints_of(run_dir) -> List:
    """``(iteration, path)`` of a training run's ``models/net_g_<iter>.pth``, in order (``latest`` left out)."""
    found = []
    for path in (Path(run_dir) / 'models').glob('net_g_*.pth'):
        tail = path.stem[len('net_g_'):]
        if tail.isdigit():
            found.append((int(tail), path))
    return sorted(found)


def diagnose(net: nn.Module, batches: List[dict]) -> Dict[str, float]:
    """Every measurement of this module for one network, averaged over batch-1 samples.

    Args:
        net: A trained network in ``eval()`` mode: a :class:`CSPSR` (any variant), a NIR-guided peer or a VIS-only
            network.
        batches: Samples of the validation split (``lq``, ``lq_nir``, ``gt``, and ``disp`` for ``cvm='given'``).

    Returns:
        dict: ``nir_to_vis`` (input gradients); ``cross_view_update`` for a network that has such modules
        (:func:`cross_view_update`); for a dual-branch CSPSR also the parameter gradient shares and, with the
        dynamic convolution and CSFT, the mean over modules of :func:`dmf_statistics`.
    """
    bare = _bare(net)
    dual = isinstance(bare, CSPSR) and bare.branches == 'dual'
    fused = dual and all(isinstance(d.dyconv, DynamicConv) and isinstance(d.fusion, CSFT) for d in bare.dmfs)
    guided = isinstance(bare, CSPSR) or reads_nir(type(bare).__name__)
    rows = []
    for data in batches:
        lq, gt, disp = data['lq'], data['gt'], data.get('disp')
        # a CSPSR that does not read its NIR (branches='vis') gets no NIR gradient: input_gradient_share gives 0
        nir = data['lq_nir'] if guided else None
        row = {'nir_to_vis': input_gradient_share(net, lq, gt, nir, disp)['nir_to_vis']}
        update = cross_view_update(net, lq, data['lq_nir'], disp) if guided else None
        if update is not None:
            row['cross_view_update'] = update
        if dual:
            share = parameter_gradient_share(net, lq, data['lq_nir'], gt, disp)
            row.update(grad_share_nir_branch=share['nir_branch'], grad_share_cvm=share['cvm'])
        if fused:
            row.update(summarise(fusion_statistics(net, lq, data['lq_nir'], disp)))
        rows.append(row)
    return {key: float(sum(r[key] for r in rows) / len(rows)) for key in rows[0]}


def diagnose_run(run_dir, split, scale: int, max_images: int = 4) -> List[Dict[str, float]]:
    """:func:`diagnose` for every checkpoint of a benchmark or ``basicsr train`` run: the statistics over training.

    Args:
        run_dir: ``experiments/<name>`` (holds ``<name>.yml`` with the options it was trained with, and ``models/``).
        split: A validation split in the canonical layout (never the test split).
        scale: Scale factor.
        max_images: How many of the split's images to average over.

    Returns:
        list: One dict per checkpoint, with ``iter`` first.
    """
    import yaml

    from cspsr_arch.benchmark.evaluation import build_trained, test_loader
    from cspsr_arch.errors import CSPSRInputError
    run_dir = Path(run_dir)
    option_file = run_dir / f'{run_dir.name}.yml'
    if not option_file.is_file():
        raise CSPSRInputError(f'{option_file} not found: give the experiment folder of a training run '
                              '(experiments/<name>, holding <name>.yml and models/).')
    opt = yaml.safe_load(option_file.read_text())
    checkpoints = checkpoints_of(run_dir)
    if not checkpoints:
        raise CSPSRInputError(f'No models/net_g_<iter>.pth in {run_dir}: train the run first.')
    degradation = (opt.get('datasets', {}).get('val') or opt.get('datasets', {}).get('train') or {}).get('degradation')
    batches = list(test_loader(Path(split), scale, degradation))[:max_images]
    rows = []
    for iteration, path in checkpoints:
        model = build_trained(opt, path)
        model.net_g.eval()
        rows.append({'iter': float(iteration), **diagnose(model.net_g, batches)})
    return rows


COLUMNS = ('iter', 'nir_to_vis', 'cross_view_update', 'grad_share_nir_branch', 'grad_share_cvm', 'nir_share',
           'vis_change', 'w_s1_mean', 'w_s2_mean', 'w_c1_mean', 'w_c2_mean', 'kernel_centre', 'kernel_entropy')
"""Columns of :func:`markdown_table`, in order (those a run lacks are left out)."""


def markdown_table(rows: List[Dict[str, float]]) -> str:
    """The rows of :func:`diagnose_run` as a markdown table."""
    columns = [c for c in COLUMNS if c in rows[0]]
    lines = ['| ' + ' | '.join(columns) + ' |', '| ' + ' | '.join('---' for _ in columns) + ' |']
    for row in rows:
        lines.append('| ' + ' | '.join(f'{int(row[c])}' if c == 'iter' else f'{row[c]:.4g}' for c in columns) + ' |')
    return '\n'.join(lines)


USAGE = """Where does a trained network's NIR contribution go? CSFT gates, dynamic kernels and gradient shares over training.

For every ``models/net_g_<iter>.pth`` of each run, on a few images of a validation split (never the test split):
the input-gradient ratio NIR / VIS, the size of the cross-view term added to the VIS features (CSPSR's
DMF modules, NAFSSR's cross-attention), the share of the VIS loss's gradient on CSPSR's NIR branch and on its
cross-view matching, and per DMF module (averaged) the CSFT gates, the NIR term's share of the fused VIS
feature, the relative change of the VIS features and the dynamic kernels' centre weight and entropy.
Definitions: :mod:`cspsr_arch.benchmark.nir_use`.

Usage::

    python tools/nir_diagnostics.py results/benchmark/cpu/experiments/CSPSR_x4 [more runs ...] \\
        --split results/benchmark/cpu/data/val [--scale 4] [--max-images 4] [--json out.json]
"""
"""The command line help of ``main`` (the tool's docstring)."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/nir_diagnostics.py``: see :data:`USAGE`."""
    from cspsr_arch.helptext import split_doc
    p = argparse.ArgumentParser(description=split_doc(USAGE)[0], epilog=split_doc(USAGE)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('runs', nargs='+', help='experiment folders (experiments/<name>, with <name>.yml and models/)')
    p.add_argument('--split', required=True, help='validation split in the canonical layout (not the test split)')
    p.add_argument('--scale', type=int, default=4, help='scale factor (default: 4)')
    p.add_argument('--max-images', type=int, default=4, help='images of the split to average over (default: 4)')
    p.add_argument('--json', default=None, help='also write every row to this JSON file')
    args = p.parse_args(argv)

    from cspsr_arch.errors import CSPSRInputError
    torch.set_grad_enabled(True)
    results = {}
    try:
        for run in args.runs:
            results[Path(run).name] = rows = diagnose_run(run, args.split, args.scale, args.max_images)
            print(f'## {Path(run).name}\n\n{markdown_table(rows)}\n')
    except CSPSRInputError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0
