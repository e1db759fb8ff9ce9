"""Rows of the GPU check, their PASS / FAIL / SKIPPED table, the JSON file and the exit status.

Exit status (:func:`exit_status`):

* ``0`` (:data:`EXIT_PASS`): CUDA was there, every row ran and passed;
* ``1`` (:data:`EXIT_FAIL`): at least one row failed (on CUDA or in a CPU part);
* ``3`` (:data:`EXIT_NO_CUDA`): no CUDA: the CPU parts ran (none failed) but the GPU checks did not, so the
  run can never be read as a passed GPU check;
* ``4`` (:data:`EXIT_INCOMPLETE`): CUDA was there and nothing failed, but some rows were skipped (the time
  budget ran out, or a part such as Triton was missing): not a complete GPU check either.
"""
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

PASS, FAIL, SKIPPED = 'PASS', 'FAIL', 'SKIPPED'
EXIT_PASS, EXIT_FAIL, EXIT_NO_CUDA, EXIT_INCOMPLETE = 0, 1, 3, 4
NO_CUDA = 'no CUDA'


@dataclasses.dataclass
class Row:
    """One named check and what it measured.

    Args:
        name: Short name (``cuda_vs_cpu:cspsr_fused``, ``train_cli:resume`` ...).
        status: :data:`PASS`, :data:`FAIL` or :data:`SKIPPED`.
        numbers: Measured figures (JSON-serialisable: numbers, strings, small dicts).
        tolerance: What the figures were held to, in words or numbers (empty for rows without one).
        seconds: Wall time the row took.
        reason: Why it was skipped, or why it failed (an error message), else empty.
        gpu: Whether the row is about the CUDA path (its SKIPPED reason is then ``no CUDA`` on a CPU machine).
    """

    name: str
    status: str
    numbers: Dict[str, Any] = dataclasses.field(default_factory=dict)
    tolerance: Dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    reason: str = ''
    gpu: bool = True

    def __post_init__(self) -> None:
        if self.status not in (PASS, FAIL, SKIPPED):
            raise ValueError(f'status must be PASS, FAIL or SKIPPED, got {self.status!r}')


def skipped(name: str, reason: str, gpu: bool = True) -> Row:
    """A SKIPPED row.

    Args:
        name: Row name.
        reason: Why it did not run (``no CUDA``, ``time budget`` ...).
        gpu: Whether it is a GPU row.
    """
    return Row(name, SKIPPED, reason=reason, gpu=gpu)


def exit_status(rows: Sequence[Row], cuda: bool) -> int:
    """The exit status of a run (see the module docstring).

    Args:
        rows: Every row of the run.
        cuda: Whether CUDA was available (the GPU checks could run).
    """
    if any(r.status == FAIL for r in rows):
        return EXIT_FAIL
    if not cuda:
        return EXIT_NO_CUDA
    if not rows or any(r.status == SKIPPED for r in rows):
        return EXIT_INCOMPLETE
    return EXIT_PASS


OVERALL = {EXIT_PASS: 'PASS', EXIT_FAIL: 'FAIL', EXIT_NO_CUDA: 'NO CUDA: GPU checks did not run',
           EXIT_INCOMPLETE: 'INCOMPLETE: some checks were skipped'}


def machine_info() -> Dict[str, Any]:
    """torch, CUDA and cuDNN versions, the GPU's name and memory, the CPU cores and the host."""
    import torch
    info: Dict[str, Any] = {
        'torch': torch.__version__, 'cuda_available': torch.cuda.is_available(), 'cuda': torch.version.cuda,
        'cudnn': torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        'cpu_cores': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(),
        'torch_threads': torch.get_num_threads(), 'python': platform.python_version(), 'host': platform.node(),
        'gpu': None, 'gpu_memory_GB': None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_GB=round(props.total_memory / 2**30, 1),
                    gpu_count=torch.cuda.device_count(), bf16_supported=torch.cuda.is_bf16_supported())
    return info


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.3g}'
    if isinstance(value, dict):
        return '{' + ', '.join(f'{k}: {_fmt(v)}' for k, v in value.items()) + '}'
    return str(value)


def format_table(rows: Sequence[Row], width: int = 110) -> str:
    """The PASS / FAIL / SKIPPED table as text, one line per row (numbers shortened to ``width``).

    Args:
        rows: The rows.
        width: Longest ``numbers`` column.
    """
    name_w = max([len(r.name) for r in rows] + [5])
    lines = [f"{'check':<{name_w}}  {'status':<7}  {'s':>6}  numbers / reason", '-' * (name_w + 24 + 40)]
    for r in rows:
        status = r.status if r.status != SKIPPED else 'SKIPPED'
        detail = ', '.join(f'{k}={_fmt(v)}' for k, v in r.numbers.items())
        if r.reason:
            detail = f'({r.reason})' + (f' {detail}' if detail else '')
        if len(detail) > width:
            detail = detail[:width - 3] + '...'
        lines.append(f'{r.name:<{name_w}}  {status:<7}  {r.seconds:6.1f}  {detail}')
    return '\n'.join(lines)


def summary_line(rows: Sequence[Row], cuda: bool) -> str:
    """One line: the counts of each status and the overall verdict."""
    counts = {s: sum(r.status == s for r in rows) for s in (PASS, FAIL, SKIPPED)}
    status = exit_status(rows, cuda)
    line = f'{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIPPED]} skipped: {OVERALL[status]} (exit {status})'
    if not cuda:
        line += '\nNo CUDA device: only the CPU reference parts ran; the GPU checks did NOT run.'
    return line


def report_dict(rows: Sequence[Row], cuda: bool, machine: Dict[str, Any], settings: Dict[str, Any],
                seconds: float) -> Dict[str, Any]:
    """Everything the JSON file holds.

    Args:
        rows: The rows.
        cuda: Whether CUDA was available.
        machine: :func:`machine_info`.
        settings: The run's settings (budget, sizes, options).
        seconds: Wall time of the whole run.
    """
    status = exit_status(rows, cuda)
    return {'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'), 'machine': machine, 'settings': settings,
            'rows': [dataclasses.asdict(r) for r in rows], 'overall': OVERALL[status], 'exit_code': status,
            'seconds': round(seconds, 1)}


def write_json(path: Path, report: Dict[str, Any]) -> None:
    """Write the report (non-finite floats as strings, so any JSON reader takes it).

    Args:
        path: Output file (its folder is created).
        report: :func:`report_dict`.
    """
    def clean(value: Any) -> Any:
        if isinstance(value, float) and (value != value or value in (float('inf'), float('-inf'))):
            return str(value)
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(report), indent=2) + '\n')


def load_rows(path: Path) -> List[Row]:
    """The rows of a written JSON report.

    Args:
        path: A file written by :func:`write_json`.
    """
    return [Row(**r) for r in json.loads(Path(path).read_text())['rows']]


def failed_reason(error: BaseException, limit: int = 400) -> str:
    """A one-line reason for a FAIL row from an exception (type and the end of its message).

    Args:
        error: The exception.
        limit: Longest message kept.
    """
    text = ' '.join(str(error).split())
    return f'{type(error).__name__}: {text[-limit:]}'
