"""Training one benchmark run with ``basicsr train`` in this process, with a progress bar, its wall time,
and resumption.

The options go to ``<root>/options/<name>.yml`` and :func:`cspsr_arch.engine.pipeline.run` runs BasicSR's own
``train_pipeline`` on them with ``--auto_resume`` (experiments under ``<root>/experiments``). BasicSR's
``basicsr`` logger is set up here before each run, writing to ``<root>/logs/<name>.log`` and feeding the
progress bar instead of the console (BasicSR sets it up only once per process). A finished run leaves
``experiments/<name>/benchmark.json`` (options, iterations, accumulated wall time) and is not trained
again; an interrupted one resumes from its last checkpoint. A run folder made with other options is an
error (delete it, or use another benchmark name), never silently mixed.

Several processes may share one benchmark's training (one per core or GPU, see ``--train-only`` of
``tools/benchmark.py``): a run being trained holds ``experiments/<name>.lock`` (the process id), the other
processes go on with the next run and come back to it once it has finished; the lock of a process that
died is taken over (the run resumes from its last checkpoint).
"""
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import yaml

from cspsr_arch.benchmark.runs import Run
from cspsr_arch.engine.options import plain
from cspsr_arch.errors import CSPSRInputError

ITER_RE = re.compile(r'(?:\[epoch:\s*\d+, iter:|Resuming training from epoch: \d+, iter:)\s*([\d,]+)')
LOG_FORMAT = '%(asctime)s %(levelname)s: %(message)s'


class _ProgressHandler(logging.Handler):
    """Moves a tqdm bar to the iteration of BasicSR's log lines, and calls ``on_progress`` (if any) at each."""

    def __init__(self, bar, on_progress: Optional[Callable[[], None]] = None) -> None:
        super().__init__(logging.INFO)
        self.bar, self.on_progress = bar, on_progress

    def emit(self, record: logging.LogRecord) -> None:
        match = ITER_RE.search(record.getMessage())
        if match:
            self.bar.n = min(int(match.group(1).replace(',', '')), self.bar.total)
            self.bar.refresh()
            if self.on_progress is not None:
                self.on_progress()


def setup_logger(log_file: Path, bar=None, on_progress: Optional[Callable[[], None]] = None) -> logging.Logger:
    """(Re)initialise BasicSR's ``basicsr`` logger: a log file and a progress bar (if any), no console output.

    Args:
        log_file: Log file (appended to).
        bar: tqdm bar moved to the iteration of the training log lines, or None.
        on_progress: Called at each training log line (with a bar): the run's wall time is saved there, so a
            process killed without clean-up (SIGKILL, a machine restart) loses at most one log interval of it.
    """
    from basicsr.utils import logger as basicsr_logger
    logger = logging.getLogger('basicsr')
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    file_handler = logging.FileHandler(log_file, 'a')
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(file_handler)
    if bar is not None:
        logger.addHandler(_ProgressHandler(bar, on_progress))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    basicsr_logger.initialized_logger['basicsr'] = True  # get_root_logger returns it as it is
    return logger


def write_options(run: Run, root: Path) -> Path:
    """Write the run's complete options to ``<root>/options/<name>.yml``; return the path."""
    path = root / 'options' / f'{run.name}.yml'
    path.parent.mkdir(parents=True, exist_ok=True)
    opt = plain(run.opt)
    if 'path' in opt:  # checkpoints of other runs are relative to the benchmark folder
        opt['path'] = {k: (str(root / v) if k == 'pretrain_network_disp' and v else v) for k, v in opt['path'].items()}
    path.write_text(f'# {run.model} at x{run.scale}, written by tools/benchmark.py\n'
                    + yaml.safe_dump(opt, sort_keys=False))
    return path


def done_record(run: Run, root: Path, data: str = '') -> Optional[dict]:
    """The record of a finished run, None when it has not finished; an error when made with other options.

    Args:
        run: The run.
        root: The benchmark folder.
        data: Fingerprint of the training data (the generators' settings); other data is refused too.
    """
    record_file = root / 'experiments' / run.name / 'benchmark.json'
    if not record_file.is_file():
        return None
    record = json.loads(record_file.read_text())
    if record['options'] != plain(run.opt) or record.get('data', '') != data:
        raise CSPSRInputError(f'{record_file.parent} was trained with other options than this benchmark asks for '
                              f'(preset, option files or data changed); delete that folder to retrain it, or pass '
                              f'another --name.')
    return record


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError: alive, owned by another user
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def claim(run: Run, root: Path, fresh_s: float = 30.0) -> Optional[Path]:
    """Take the lock of a run; None when another live process holds it.

    Args:
        run: The run.
        root: The benchmark folder.
        fresh_s: A lock file without a process id yet (being written) counts as held for this long.

    Returns:
        The lock file (delete it when done), or None.
    """
    lock = root / 'experiments' / f'{run.name}.lock'
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                text, age = lock.read_text().strip(), time.time() - lock.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            pid = int(text) if text.isdigit() else 0
            if (pid and pid != os.getpid() and _alive(pid)) or (not pid and age < fresh_s):
                return None
            lock.unlink(missing_ok=True)  # its process died (or it is ours, left by an interrupted call)
            continue
        with os.fdopen(fd, 'w') as f:
            f.write(str(os.getpid()))
        return lock


def train(run: Run, root: Path, data: str = '', position: int = 0) -> Optional[dict]:
    """Train a run unless it has finished; return its record (``wall_s``, ``iters``, ``options``).

    Args:
        run: The run.
        root: The benchmark folder.
        data: Fingerprint of the training data (see :func:`done_record`).
        position: Line of the progress bar.

    Returns:
        The record, or None when another process is training the run now.
    """
    record = done_record(run, root, data)
    if record is not None:
        return record
    lock = claim(run, root)
    if lock is None:
        return None
    try:
        record = done_record(run, root, data)  # finished by another process since the first look
        return record if record is not None else _train(run, root, data, position)
    finally:
        lock.unlink(missing_ok=True)


def train_all(runs: Sequence[Run], root: Path, data: str = '', poll_s: float = 30.0) -> Dict[str, dict]:
    """Train (or reuse) every run; runs that another process is training are waited for at the end.

    A run that loads another run's disparity network waits until that one has finished.

    Args:
        runs: The runs, in order.
        root: The benchmark folder.
        data: Fingerprint of the training data.
        poll_s: Seconds between looks at runs trained elsewhere.

    Returns:
        Run name -> record.
    """
    records: Dict[str, dict] = {}
    pending: List[Run] = list(runs)
    while pending:
        later = []
        for run in pending:
            if run.stereo and run.stereo not in records:
                later.append(run)
                continue
            print(f'[benchmark] training {len(records) + 1}/{len(runs)}: {run.name}', flush=True)
            record = train(run, root, data)
            if record is None:
                print(f'[benchmark] {run.name}: another process is training it, back to it later', flush=True)
                later.append(run)
            else:
                records[run.name] = record
        if len(later) == len(pending):
            time.sleep(poll_s)
        pending = later
    return records


def _train(run: Run, root: Path, data: str, position: int) -> dict:
    from tqdm import tqdm

    from cspsr_arch.engine.pipeline import run as basicsr_run
    exp = root / 'experiments' / run.name
    partial_file = root / 'logs' / f'{run.name}.time.json'
    partial_file.parent.mkdir(parents=True, exist_ok=True)
    partial = json.loads(partial_file.read_text()) if partial_file.is_file() and exp.is_dir() else {'wall_s': 0.0}
    if (partial.get('options', plain(run.opt)), partial.get('data', data)) != (plain(run.opt), data):
        raise CSPSRInputError(f'{exp} holds an interrupted run with other options or data than this benchmark asks '
                              'for; delete it (and its logs/ files) to start again, or pass another --name.')
    opt_file = write_options(run, root)
    iters = run.opt['train']['total_iter']
    with tqdm(total=iters, desc=f'train {run.name}', unit='it', position=position, leave=True,
              dynamic_ncols=True) as bar:
        start, before = time.perf_counter(), partial['wall_s']

        def save() -> dict:  # the time of the earlier processes of this run, and of this one so far
            state = {'wall_s': before + time.perf_counter() - start, 'options': plain(run.opt), 'data': data}
            partial_file.write_text(json.dumps(state))
            return state

        setup_logger(root / 'logs' / f'{run.name}.log', bar, on_progress=save)
        try:
            basicsr_run('train', ['-opt', str(opt_file), '--auto_resume'], root_path=str(root))
        finally:
            partial = save()
        bar.n = iters
        bar.refresh()
    setup_logger(root / 'logs' / 'benchmark.log')  # detach the closed bar
    record = {'name': run.name, 'iters': iters, 'wall_s': partial['wall_s'], 'options': plain(run.opt), 'data': data}
    (exp / 'benchmark.json').write_text(json.dumps(record, indent=1))
    return record
