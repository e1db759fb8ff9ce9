"""Run the GPU checks in order within a time budget, print the table, write the JSON, return the exit status.

Order (the most telling first, so that a short budget still checks correctness): ``equivalence`` (CPU reference
and CUDA against it), ``infer``, ``train`` (``basicsr train`` and its resume), ``ddp``, ``compile``
(``torch.compile`` against eager), ``timing``. A check that would start with less than its minimum time left
gives SKIPPED rows with reason ``time budget``; subprocesses get the time that is left as their timeout.
"""
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from cspsr_arch.gpu_check import checks, compiled, inference, timing, training
from cspsr_arch.gpu_check.report import (FAIL, NO_CUDA, Row, exit_status, failed_reason, format_table, machine_info,
                                         report_dict, skipped, summary_line, write_json)

CHECKS = ('equivalence', 'infer', 'train', 'ddp', 'compile', 'timing')
MIN_SECONDS = {'equivalence': 10, 'infer': 20, 'train': 60, 'ddp': 25, 'compile': 40, 'timing': 20}
"""Least time left (s) at which each check still starts on CUDA."""
CPU_TRAIN_REASON = f'{NO_CUDA} (paper-size training is too slow on the CPU; --cpu-train runs it with tiny sizes)'


@dataclasses.dataclass
class Settings:
    """What one run of the GPU check does.

    Args:
        out: JSON file to write.
        quick: Fewer iterations and timed runs.
        only: Checks to run (default: all of :data:`CHECKS`).
        budget_s: Time budget of the whole run (seconds).
        tiny: Tiny networks and inputs everywhere (tests, a smoke run).
        cpu_train: Without CUDA, run the training checks on the CPU with tiny sizes (else SKIPPED).
        cpu_timing: Without CUDA, run the timing rows on the CPU with tiny sizes (else SKIPPED).
        workdir: Working folder (default: a temporary folder, removed afterwards).
    """

    out: Path = Path('results/gpu_check.json')
    quick: bool = False
    only: Optional[Sequence[str]] = None
    budget_s: float = 270.0
    tiny: bool = False
    cpu_train: bool = False
    cpu_timing: bool = False
    workdir: Optional[Path] = None


def _train_plan(settings: Settings, cuda: bool) -> training.TrainPlan:
    if settings.tiny or not cuda:
        return training.TINY_PLAN
    return training.QUICK_PLAN if settings.quick else training.PAPER_PLAN


def _timing_sizes(settings: Settings, cuda: bool) -> timing.TimingSizes:
    if settings.tiny or not cuda:
        return timing.TINY_TIMING
    return timing.QUICK_TIMING if settings.quick else timing.PAPER_TIMING


def _equivalence_sizes(settings: Settings) -> checks.Sizes:
    return checks.TINY_SIZES if settings.tiny else checks.PAPER_SIZES


class Budget:
    """Seconds left of the run's budget.

    Args:
        seconds: The budget.
    """

    def __init__(self, seconds: float) -> None:
        self.deadline = time.time() + seconds

    def left(self) -> float:
        """Seconds left (negative when past)."""
        return self.deadline - time.time()


def _names(check: str) -> List[str]:
    """Row names a check would produce (for SKIPPED rows)."""
    if check == 'equivalence':
        return [f'cuda_vs_cpu:{c}' for c in checks.CASES]
    if check == 'infer':
        return ['infer:cspsr_cuda_vs_cpu', 'infer:cspsr_tiled', 'infer:edsr_tiled_exact']
    if check == 'train':
        return ['train_cli:loss_falls', 'train_cli:resume']
    if check == 'ddp':
        return ['ddp_torchrun']
    if check == 'compile':
        return [compiled.ROW]
    return [f'timing:{m}:{p}' for m in timing.MODELS for p in ('fp32', 'half')]


def run_checks(settings: Settings, workdir: Path, cuda: bool, log: Callable[[str], None] = print) -> List[Row]:
    """Every selected check, in order, as rows.

    Args:
        settings: The run's settings.
        workdir: Working folder.
        cuda: Whether CUDA is available.
        log: Progress lines.
    """
    budget = Budget(settings.budget_s)
    selected = [c for c in CHECKS if settings.only is None or c in settings.only]
    rows: List[Row] = []
    for check in selected:
        if check == 'ddp' and 'train' in selected:
            continue  # it runs with the training check, on its data
        names = _names(check) + (['ddp_torchrun'] if check == 'train' and 'ddp' in selected else [])
        if cuda and budget.left() < MIN_SECONDS[check]:
            rows += [skipped(n, 'time budget') for n in names]
            continue
        try:
            rows += _run_check(check, settings, selected, workdir, cuda, budget, log)
        except Exception as err:  # noqa: BLE001  (a bug or a broken set-up: FAIL rows, and the other checks go on)
            done = {r.name for r in rows}
            rows += [Row(n, FAIL, reason=failed_reason(err), gpu=cuda) for n in names if n not in done]
    return rows


def _run_check(check: str, settings: Settings, selected: List[str], workdir: Path, cuda: bool, budget: Budget,
               log: Callable[[str], None]) -> List[Row]:
    """The rows of one check (see :func:`run_checks`).

    Args:
        check: One of :data:`CHECKS`.
        settings: The run's settings.
        selected: The checks of the run.
        workdir: Working folder.
        cuda: Whether CUDA is available.
        budget: Time left.
        log: Progress lines.
    """
    rows: List[Row] = []
    if check == 'equivalence':
        rows += checks.equivalence_rows(_equivalence_sizes(settings), cuda, log=log)
    elif check == 'infer':
        if not cuda:
            return [skipped(n, NO_CUDA) for n in _names(check)]
        sizes = inference.TINY_INFER if settings.tiny else inference.PAPER_INFER
        rows += inference.inference_rows(workdir / 'infer', sizes, 'cuda', log=log)
    elif check in ('train', 'ddp'):
        want_train, want_ddp = check == 'train', 'ddp' in selected
        if not cuda and not settings.cpu_train:
            rows += [skipped(n, CPU_TRAIN_REASON) for n in _names('train') if want_train]
            if want_ddp:
                rows.append(skipped('ddp_torchrun', f'{NO_CUDA} (NCCL needs a GPU; --cpu-train runs it with gloo)'))
            return rows
        reserve = sum(MIN_SECONDS[c] for c in ('compile', 'timing') if c in selected) if cuda else 0
        timeout = max(budget.left() - reserve, MIN_SECONDS['train']) if cuda else 1800
        rows += training.training_rows(workdir / 'train', _train_plan(settings, cuda), cuda, timeout,
                                       with_train=want_train, with_ddp=want_ddp, log=log)
    elif check == 'compile':
        if not cuda:
            return [skipped(compiled.ROW, NO_CUDA)]
        sizes = checks.TINY_SIZES if settings.tiny else dataclasses.replace(checks.PAPER_SIZES, num_dmf=3)
        reserve = MIN_SECONDS['timing'] if 'timing' in selected else 0
        log('[gpu_check] torch.compile against eager on CUDA (a subprocess)')
        rows.append(compiled.compile_row(sizes, max(budget.left() - reserve, 30), workdir))
    elif check == 'timing':
        if not cuda and not settings.cpu_timing:
            return [skipped(n, f'{NO_CUDA} (--cpu-timing times tiny networks on the CPU)')
                    for n in _names(check)]
        device = torch.device('cuda' if cuda else 'cpu')
        rows += timing.timing_rows(_timing_sizes(settings, cuda), device, deadline=budget.deadline if cuda else
                                   float('inf'), log=log)
    return rows


def run(settings: Settings, log: Callable[[str], None] = print) -> int:
    """Run the checks, print the table, write the JSON; return the exit status (see :mod:`.report`).

    Args:
        settings: The run's settings.
        log: Progress lines and the table.
    """
    import cspsr_arch  # noqa: F401  (registration)
    unknown = sorted(set(settings.only or ()) - set(CHECKS))
    if unknown:
        raise ValueError(f'unknown checks {unknown}; choose from {", ".join(CHECKS)}')
    start = time.time()
    cuda = torch.cuda.is_available()
    machine = machine_info()
    log(f"[gpu_check] torch {machine['torch']}, CUDA {machine['cuda']}, GPU {machine['gpu']}, "
        f"{machine['cpu_cores']} cores; budget {settings.budget_s:.0f} s")
    if not cuda:
        log('[gpu_check] no CUDA device: the CPU reference parts run, the GPU checks are SKIPPED (no CUDA)')
    if settings.workdir is not None:
        settings.workdir.mkdir(parents=True, exist_ok=True)
        rows = run_checks(settings, Path(settings.workdir), cuda, log)
    else:
        with tempfile.TemporaryDirectory(prefix='gpu_check_') as tmp:
            rows = run_checks(settings, Path(tmp), cuda, log)
    seconds = time.time() - start
    described = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(settings).items()}
    sizes: Dict[str, object] = {'equivalence': dataclasses.asdict(_equivalence_sizes(settings)),
                                'train': dataclasses.asdict(_train_plan(settings, cuda)),
                                'timing': dataclasses.asdict(_timing_sizes(settings, cuda))}
    report = report_dict(rows, cuda, machine, {**described, 'sizes': sizes}, seconds)
    write_json(settings.out, report)
    log('\n' + format_table(rows))
    log(summary_line(rows, cuda) + f'\nJSON: {settings.out} ({seconds:.0f} s)')
    return exit_status(rows, cuda)
