"""``torch.compile`` against eager on CUDA: CSPSR forward and backward, train mode, fp32 with TF32 off.

The network is the paper's CSPSR (C=64, learned CVM, x4) with fewer DMF modules (``num_dmf`` 3 by default:
the compilation time grows with the unrolled graph, and every DMF is the same code), compiled as
``train: compile: true`` compiles it (:func:`cspsr_arch.engine.compile.compile_network`, static shapes). It
compares the outputs and the parameters' gradients (not the input images', which training does not need and
inductor's backward of the replicate padding fails on with channels-last inputs: a stride assertion in
``replication_pad2d_backward``, seen on the CPU with torch 2.x). It runs in a subprocess
(``python -m cspsr_arch.gpu_check.compiled``) with a timeout, so that a slow or failing
compilation (Triton, inductor) cannot stall or crash the other checks. The outputs and gradients are compared
as in :mod:`cspsr_arch.gpu_check.checks` (same tolerances): inductor fuses and reorders fp32 arithmetic.
"""
import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import torch

from cspsr_arch.gpu_check.checks import Sizes, compare_both, make_case, no_tf32, run_case
from cspsr_arch.gpu_check.report import FAIL, PASS, SKIPPED, Row, failed_reason

ROW = 'cuda_compile:cspsr'


def compare_compiled(device: torch.device, sizes: Sizes) -> dict:
    """Eager and compiled results of the ``cspsr_fused`` case on ``device``, compared.

    Args:
        device: Where both run.
        sizes: Network and input sizes.

    Returns:
        dict: ``forward`` and ``backward`` (:func:`~cspsr_arch.gpu_check.checks.compare`), ``compile_s`` (the
        compiled run, compilation included) and ``compiled`` (False when inductor was not available).
    """
    from cspsr_arch.engine.compile import compile_network
    # gradients of the parameters only, as in training: with gradients to the input images too, inductor's
    # backward of the replicate padding fails a stride assertion on channels-last inputs (torch 2.x, seen on the CPU)
    case = dataclasses.replace(make_case('cspsr_fused', sizes), grad_inputs=())
    used = {'compiled': True}

    def wrap(net):
        return compile_network(net, device, dynamic_size=False, log=lambda msg: used.update(compiled=False, why=msg))

    with no_tf32():
        eager = run_case(case, device)
        start = time.time()
        compiled = run_case(case, device, wrap)
        compile_s = time.time() - start
    return {**compare_both(eager, compiled), 'compile_s': compile_s, **used}


def compile_row(sizes: Sizes, timeout: float, workdir: Path) -> Row:
    """Run :func:`compare_compiled` on CUDA in a subprocess and turn its result into the row ``cuda_compile:cspsr``.

    Args:
        sizes: Network and input sizes.
        timeout: Seconds the subprocess may take.
        workdir: Where its JSON result goes.
    """
    out = workdir / 'compile.json'
    cmd = [sys.executable, '-m', 'cspsr_arch.gpu_check.compiled', '--device', 'cuda', '--out', str(out),
           '--sizes', json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in sizes.__dict__.items()})]
    start = time.time()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        return Row(ROW, FAIL, seconds=time.time() - start, reason=f'compilation and run took over {timeout:.0f} s')
    seconds = time.time() - start
    if done.returncode != 0 or not out.is_file():
        tail = ' '.join((done.stderr or '').strip().splitlines()[-3:])[-400:]
        return Row(ROW, FAIL, {'returncode': done.returncode}, seconds=seconds, reason=f'compile worker failed: {tail}')
    result = json.loads(out.read_text())
    if not result.get('compiled'):
        return Row(ROW, SKIPPED, seconds=seconds, reason=result.get('why', 'not compiled'))
    numbers = {'compile_s': round(result['compile_s'], 1), 'num_dmf': sizes.num_dmf}
    for kind in ('forward', 'backward'):
        short = {'forward': 'fwd', 'backward': 'bwd'}[kind]
        numbers.update({f'{short}_max_rel_diff': result[kind]['max_rel_diff'], f'{short}_worst': result[kind]['worst']})
    ok = result['forward']['passed'] and result['backward']['passed']
    tols = {kind: result[kind]['tolerance'] for kind in ('forward', 'backward')}
    return Row(ROW, PASS if ok else FAIL, numbers, tols, seconds, '' if ok else 'compiled differs from eager')


def main(argv: Optional[List[str]] = None) -> int:
    """The subprocess: ``--device``, ``--sizes`` (JSON of :class:`Sizes`), ``--out`` (the result's JSON file)."""
    parser = argparse.ArgumentParser(description='torch.compile against eager (worker of tools/gpu_check.py)')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--sizes', required=True)
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    import cspsr_arch  # noqa: F401  (registration)
    raw = json.loads(args.sizes)
    sizes = Sizes(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    try:
        result = compare_compiled(torch.device(args.device), sizes)
    except Exception as err:  # noqa: BLE001  (reported by the parent as the row's reason)
        print(failed_reason(err), file=sys.stderr)
        raise
    Path(args.out).write_text(json.dumps(result, default=float))
    return 0


if __name__ == '__main__':
    sys.exit(main())
