"""CUDA against CPU equivalence of CSPSR's parts, forward and backward, in fp32.

Each *case* builds a module with seed 0, feeds it seeded inputs, and returns its outputs (``out:<name>``) and,
after a backward pass of a fixed random weighting of every output, the gradients of its float inputs
(``grad:input:<name>``) and of its parameters (``grad:param:<name>``). The CPU computes the reference
(twice: it must be bit-identical, the *determinism* rows, which run on any machine); on CUDA the same case
runs again and every tensor is compared with the reference (:func:`compare`).

Tolerances (fp32, TF32 off: ``torch.backends.cuda.matmul.allow_tf32 = False`` and
``torch.backends.cudnn.allow_tf32 = False`` while the CUDA side runs): for each tensor the largest absolute
difference divided by the larger of the reference's largest magnitude and ``FLOOR`` (1e-4) times the largest
magnitude over all tensors of its kind (outputs, gradients), so that gradients that are nearly zero are not
held to their own tiny scale; the worst tensor must be within :data:`FORWARD_TOL` (1e-4) for outputs and
:data:`BACKWARD_TOL` (1e-2) for gradients. What two correct fp32 computations differ by, measured on the CPU
between the fused and the reference DMF of ``CSPSR()`` (another order of the same sums): 5.6e-7 for the
outputs and 1.6e-3 for the gradients, the worst a one-element bias gradient of the CVM's spectral translation,
a sum over every pixel with cancellations; a wrong index, layout or formula gives differences of order 1.
The inputs keep away from the discontinuities a rounding difference could flip (the warp's validity mask at the
image border, L_CSSC's 1-pixel occlusion threshold): their disparities have fractional parts in [0.25, 0.75], and
left and right disparities differ by at most 0.45 pixels. The full CSPSR's learned disparities are not
controlled that way: a pixel whose match falls within about 1e-6 of an integer could flip the bilinear weight's
kink, which is rare at these sizes.

Cases: ``cspsr_fused`` (the paper's ``CSPSR()``, train mode, with its fused DMF, :mod:`cspsr_arch.archs.fused_dmf`),
``cspsr_reference`` (the same network with each DMF computed by its modules one after the other,
``DynamicConv`` then ``CSFT``: :func:`reference_dmf`), ``cvm`` (``CrossSpectralStereoNet``), ``warp``
(``WarpToLeft``), ``cssc_loss`` (L_CSSC) and ``bicubic_head`` (``ShuffleHead`` with its bicubic global skip,
and ``bicubic_phases`` shuffled). ``torch.compile`` against eager on CUDA: :mod:`cspsr_arch.gpu_check.compiled`.
"""
import contextlib
import dataclasses
import time
from typing import Callable, Dict, Iterator, List, Mapping, Optional

import torch
from torch import Tensor, nn

from cspsr_arch.gpu_check.report import FAIL, NO_CUDA, PASS, Row, failed_reason, skipped

FORWARD_TOL = 1e-4
BACKWARD_TOL = 1e-2
FLOOR = 1e-4
KIND_SHORT = {'forward': 'fwd', 'backward': 'bwd'}
CASES = ('cspsr_fused', 'cspsr_reference', 'cvm', 'warp', 'cssc_loss', 'bicubic_head')


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Network and input sizes of the equivalence cases.

    Args:
        num_feat: CSPSR's channels C.
        num_dmf: CSPSR's DMF modules T.
        max_disp: Largest disparity of the learned CVM (LR pixels).
        batch: Batch size of the inputs.
        lr_hw: LR height and width.
        scale: SR scale.
    """

    num_feat: int = 64
    num_dmf: int = 15
    max_disp: int = 24
    batch: int = 2
    lr_hw: tuple = (32, 48)
    scale: int = 4


PAPER_SIZES = Sizes()
TINY_SIZES = Sizes(num_feat=8, num_dmf=2, max_disp=6, batch=2, lr_hw=(12, 20))


@contextlib.contextmanager
def reference_dmf() -> Iterator[None]:
    """Within it, every DMF computes its dynamic convolution and CSFT by the modules' own forward passes
    (``DynamicConv.forward``, then ``CSFT.forward``) instead of the fused
    :func:`~cspsr_arch.archs.fused_dmf.dyconv_csft`."""
    from cspsr_arch.archs import dmf

    def unfused(dyconv: nn.Module, csft: nn.Module, feat_vis: Tensor, feat_nir: Tensor):
        nir = dyconv(feat_vis, feat_nir)
        return nir, csft(feat_vis, nir)

    fused = dmf.dyconv_csft
    dmf.dyconv_csft = unfused
    try:
        yield
    finally:
        dmf.dyconv_csft = fused


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """TF32 off for matrix products and cuDNN convolutions (fp32 proper), restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _disparity(gen: torch.Generator, shape: tuple, base: float) -> Tensor:
    """A disparity map whose fractional parts lie in [0.3, 0.7] (away from the bilinear kinks and masks)."""
    return base + 0.5 + 0.4 * (torch.rand(shape, generator=gen) - 0.5)


@dataclasses.dataclass
class Case:
    """A module, its inputs and how to call it.

    Args:
        name: Case name (one of :data:`CASES`).
        build: Builds the module (called under ``torch.manual_seed(0)``).
        inputs: Seeded CPU inputs; float inputs listed in ``grad_inputs`` get gradients.
        call: ``call(module, inputs) -> {output name: tensor}``.
        grad_inputs: Inputs whose gradients are compared.
        context: Context manager active around the forward and backward passes (e.g. :func:`reference_dmf`).
    """

    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[], Dict[str, Tensor]]
    call: Callable[[nn.Module, Dict[str, Tensor]], Dict[str, Tensor]]
    grad_inputs: tuple = ()
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


def _pair(sizes: Sizes) -> Callable[[], Dict[str, Tensor]]:
    def make() -> Dict[str, Tensor]:
        gen = torch.Generator().manual_seed(1)
        h, w = sizes.lr_hw
        return {'lq': torch.rand(sizes.batch, 3, h, w, generator=gen),
                'lq_nir': torch.rand(sizes.batch, 1, h, w, generator=gen)}
    return make


def _cspsr_case(sizes: Sizes, name: str) -> Case:
    from cspsr_arch.archs.cspsr_arch import CSPSR

    def call(net: nn.Module, x: Dict[str, Tensor]) -> Dict[str, Tensor]:
        out = net(x['lq'], x['lq_nir'])
        return {'sr': out.sr, 'nir_sr': out.nir_sr, 'disp_l': out.disp_l, 'disp_r': out.disp_r}

    return Case(name, lambda: CSPSR(num_feat=sizes.num_feat, num_dmf=sizes.num_dmf, upscale=sizes.scale,
                                    max_disp=sizes.max_disp).train(), _pair(sizes), call, ('lq', 'lq_nir'),
                reference_dmf if name == 'cspsr_reference' else contextlib.nullcontext)


def make_case(name: str, sizes: Sizes) -> Case:
    """The case called ``name`` at ``sizes``.

    Args:
        name: One of :data:`CASES`.
        sizes: Network and input sizes.
    """
    from cspsr_arch.archs.bicubic import bicubic_phases
    from cspsr_arch.archs.branch import ShuffleHead
    from cspsr_arch.archs.cross_spectral_stereo_arch import CrossSpectralStereoNet
    from cspsr_arch.archs.warp import WarpToLeft
    from cspsr_arch.losses.cssc_loss import CrossSpectralSpatialConsistencyLoss
    n, (h, w), s = sizes.batch, sizes.lr_hw, sizes.scale
    if name in ('cspsr_fused', 'cspsr_reference'):
        return _cspsr_case(sizes, name)
    if name == 'cvm':
        return Case(name, lambda: CrossSpectralStereoNet(3, max_disp=sizes.max_disp), _pair(sizes),
                    lambda net, x: net(x['lq'], x['lq_nir'])._asdict(), ('lq', 'lq_nir'))
    if name == 'warp':
        def warp_inputs() -> Dict[str, Tensor]:
            gen = torch.Generator().manual_seed(2)
            return {'img': torch.rand(n, 4, h, w, generator=gen), 'disp': _disparity(gen, (n, 1, h, w), 3.0)}
        return Case(name, WarpToLeft, warp_inputs,
                    lambda net, x: dict(zip(('warped', 'valid'), net(x['img'], x['disp']))), ('img', 'disp'))
    if name == 'cssc_loss':
        def loss_inputs() -> Dict[str, Tensor]:
            gen = torch.Generator().manual_seed(3)
            disp = _disparity(gen, (n, 1, h * s, w * s), 4.0 * s)
            return {'nir_sr': torch.rand(n, 1, h * s, w * s, generator=gen),
                    'gt_nir': torch.rand(n, 1, h * s, w * s, generator=gen), 'disp_l': disp,
                    'disp_r': disp + 0.1 * (torch.rand(disp.shape, generator=gen) - 0.5)}
        return Case(name, lambda: CrossSpectralSpatialConsistencyLoss(loss_weight=0.1),
                    loss_inputs, lambda net, x: {'loss': net(x['nir_sr'], x['gt_nir'], x['disp_l'], x['disp_r'])},
                    ('nir_sr', 'disp_l', 'disp_r'))
    if name == 'bicubic_head':
        def head_inputs() -> Dict[str, Tensor]:
            gen = torch.Generator().manual_seed(4)
            return {'feat': torch.randn(n, sizes.num_feat, h, w, generator=gen),
                    'base': torch.rand(n, 3, h, w, generator=gen)}

        def head_call(net: nn.Module, x: Dict[str, Tensor]) -> Dict[str, Tensor]:
            return {'head': net(x['feat'], x['base']),
                    'bicubic': torch.nn.functional.pixel_shuffle(bicubic_phases(x['base'], s), s)}
        return Case(name, lambda: ShuffleHead(sizes.num_feat, 3, s), head_inputs, head_call, ('feat', 'base'))
    raise ValueError(f'unknown case {name!r}; choose from {", ".join(CASES)}')


def run_case(case: Case, device: torch.device,
             wrap: Optional[Callable[[nn.Module], Callable]] = None) -> Dict[str, Tensor]:
    """Outputs and gradients of ``case`` on ``device``, as CPU tensors (float64 copies of fp32 results).

    The backward pass starts from ``sum_k (out_k * r_k).sum()`` with seeded random weights ``r_k`` (the same
    on every device), so every output element has its own part in the gradients.

    Args:
        case: The case.
        device: Where it runs.
        wrap: Called on the module; the case calls what it returns (e.g. ``torch.compile``); gradients are read
            from the module's parameters.
    """
    torch.manual_seed(0)
    module = case.build().to(device)
    runner = wrap(module) if wrap is not None else module
    inputs = {k: v.to(device).requires_grad_(k in case.grad_inputs) for k, v in case.inputs().items()}
    gen = torch.Generator().manual_seed(5)
    result: Dict[str, Tensor] = {}
    with case.context():
        outputs = {k: v for k, v in case.call(runner, inputs).items() if v is not None}
        total = 0
        for k, v in outputs.items():
            weight = torch.rand(v.shape, generator=gen).to(device)
            total = total + (v.float() * weight).sum()
            result[f'out:{k}'] = v.detach()
        total.backward()
    for k in case.grad_inputs:
        result[f'grad:input:{k}'] = inputs[k].grad
    for k, p in module.named_parameters():
        if p.grad is not None:
            result[f'grad:param:{k}'] = p.grad
    return {k: v.detach().to('cpu', torch.float64) for k, v in result.items()}


def compare(ref: Mapping[str, Tensor], test: Mapping[str, Tensor], tol: float, floor: float = FLOOR) -> Dict:
    """How far ``test`` is from ``ref``, tensor by tensor, and whether it is within ``tol``.

    Each tensor's error is its largest absolute difference over the larger of the reference tensor's largest
    magnitude and ``floor`` times the largest magnitude of all reference tensors; a NaN or an infinity
    anywhere, a missing tensor or another shape is an infinite error.

    Args:
        ref: Reference tensors by name.
        test: Tensors to check, by the same names.
        tol: Largest error accepted.
        floor: Fraction of the overall scale below which a tensor's own scale is not used.

    Returns:
        dict: ``max_abs_diff``, ``max_rel_diff`` (the worst error), ``worst`` (its tensor), ``tensors``,
        ``tolerance`` and ``passed``.
    """
    scale = max([float(v.abs().max()) for v in ref.values() if v.numel()] + [0.0])
    worst, worst_rel, max_abs = '', 0.0, 0.0
    for name in sorted(set(ref) | set(test)):
        a, b = test.get(name), ref.get(name)
        if a is None or b is None or a.shape != b.shape:
            rel, diff = float('inf'), float('inf')
        elif a.numel() == 0:
            continue
        else:
            a, b = a.double(), b.double()
            diff = float((a - b).abs().max())
            finite = bool(torch.isfinite(a).all() and torch.isfinite(b).all())
            denom = max(float(b.abs().max()), floor * scale, 1e-30)
            rel = diff / denom if finite else float('inf')
            diff = diff if finite else float('inf')
        max_abs = max(max_abs, diff)
        if rel > worst_rel or not worst:
            worst, worst_rel = name, rel
    return {'max_abs_diff': max_abs, 'max_rel_diff': worst_rel, 'worst': worst, 'tensors': len(ref),
            'tolerance': tol, 'passed': worst_rel <= tol}


def split_kinds(tensors: Mapping[str, Tensor]) -> Dict[str, Dict[str, Tensor]]:
    """``{'forward': outputs, 'backward': gradients}`` of a :func:`run_case` result."""
    return {'forward': {k: v for k, v in tensors.items() if k.startswith('out:')},
            'backward': {k: v for k, v in tensors.items() if k.startswith('grad:')}}


def compare_both(ref: Mapping[str, Tensor], test: Mapping[str, Tensor],
                 tols: Optional[Dict[str, float]] = None) -> Dict[str, Dict]:
    """:func:`compare` of the outputs and of the gradients, each at its tolerance.

    Args:
        ref: Reference result of :func:`run_case`.
        test: Result to check.
        tols: ``{'forward': ..., 'backward': ...}``; default :data:`FORWARD_TOL`, :data:`BACKWARD_TOL`.
    """
    tols = tols or {'forward': FORWARD_TOL, 'backward': BACKWARD_TOL}
    r, t = split_kinds(ref), split_kinds(test)
    return {kind: compare(r[kind], t[kind], tols[kind]) for kind in ('forward', 'backward')}


def _numbers(result: Dict[str, Dict]) -> Dict:
    return {f'{KIND_SHORT[kind]}_{key}': value for kind, c in result.items()
            for key, value in c.items() if key in ('max_abs_diff', 'max_rel_diff', 'worst')}


def equivalence_rows(sizes: Sizes, cuda: bool, cases=CASES, log: Callable[[str], None] = print) -> List[Row]:
    """The CPU reference rows (``cpu_ref:<case>``, and ``cpu_ref:fused_vs_reference_dmf``) and the CUDA rows
    (``cuda_vs_cpu:<case>``, SKIPPED with reason ``no CUDA`` without CUDA).

    Args:
        sizes: Network and input sizes.
        cuda: Whether to run the CUDA side.
        cases: Cases to run.
        log: Progress lines.
    """
    rows: List[Row] = []
    refs: Dict[str, Dict[str, Tensor]] = {}
    tols = {'forward': FORWARD_TOL, 'backward': BACKWARD_TOL}
    cpu = torch.device('cpu')
    for name in cases:
        start = time.time()
        log(f'[gpu_check] equivalence: {name} on the CPU (reference, twice)')
        try:
            case = make_case(name, sizes)
            first, second = run_case(case, cpu), run_case(case, cpu)
            same = compare_both(first, second, {'forward': 0.0, 'backward': 0.0})
            refs[name] = first
            ok = all(c['passed'] for c in same.values())
            rows.append(Row(f'cpu_ref:{name}', PASS if ok else FAIL, {'tensors': len(first), **_numbers(same)},
                            {'bit_identical_reruns': True}, time.time() - start,
                            '' if ok else 'two CPU runs of the reference differ', gpu=False))
        except Exception as err:  # noqa: BLE001  (a row, not a crash)
            rows.append(Row(f'cpu_ref:{name}', FAIL, seconds=time.time() - start, reason=failed_reason(err), gpu=False))
    if 'cspsr_fused' in refs and 'cspsr_reference' in refs:
        result = compare_both(refs['cspsr_reference'], refs['cspsr_fused'], tols)
        ok = all(c['passed'] for c in result.values())
        rows.append(Row('cpu_ref:fused_vs_reference_dmf', PASS if ok else FAIL, _numbers(result), tols, 0.0,
                        '' if ok else 'fused DMF differs from its modules on the CPU', gpu=False))
    for name in cases:
        if not cuda:
            rows.append(skipped(f'cuda_vs_cpu:{name}', NO_CUDA))
            continue
        if name not in refs:
            rows.append(skipped(f'cuda_vs_cpu:{name}', 'the CPU reference failed'))
            continue
        start = time.time()
        log(f'[gpu_check] equivalence: {name} on CUDA against the CPU')
        try:
            with no_tf32():
                test = run_case(make_case(name, sizes), torch.device('cuda'))
            result = compare_both(refs[name], test, tols)
            ok = all(c['passed'] for c in result.values())
            rows.append(Row(f'cuda_vs_cpu:{name}', PASS if ok else FAIL, _numbers(result), tols, time.time() - start,
                            '' if ok else 'CUDA differs from the CPU beyond the tolerance'))
        except Exception as err:  # noqa: BLE001
            rows.append(Row(f'cuda_vs_cpu:{name}', FAIL, seconds=time.time() - start, reason=failed_reason(err)))
    return rows
