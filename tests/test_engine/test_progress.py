"""The training log line (iteration of the total, it/s, an ETA never negative) and the data-loader workers capped
to the cores."""
import time

from cspsr_arch.engine.patches import cap_workers
from cspsr_arch.engine.progress import ProgressLogger


class _Lines:
    def __init__(self):
        self.lines = []

    def info(self, line: str) -> None:
        self.lines.append(line)


def _logger(total: int, start_iter: int = 0) -> ProgressLogger:
    opt = {'name': 'CSPSR_x4_Custom', 'logger': {'print_freq': 20, 'use_tb_logger': False},
           'train': {'total_iter': total}}
    logger = ProgressLogger(opt, start_iter)
    logger.logger = _Lines()
    return logger


def test_the_log_line_has_the_rate_and_a_non_negative_eta():
    logger = _logger(200)
    logger.start_time = time.time() - 40.0  # 40 s for the first 100 iterations
    logger({'epoch': 1, 'iter': 99, 'lrs': [1e-3], 'time': 0.4, 'data_time': 0.01, 'l_pix': 0.0123})
    line = logger.logger.lines[-1]
    assert 'iter:      99/200' in line and '2.5 it/s' in line and 'eta: 0:00:40' in line
    assert 'time (data): 0.400 (0.010)' in line and 'l_pix: 1.2300e-02' in line
    for last in (200, 202):  # BasicSR's own line says eta: -1 day, 23:59:59 here
        logger({'epoch': 1, 'iter': last, 'lrs': [1e-3], 'time': 0.4, 'data_time': 0.01})
        assert 'eta: 0:00:00' in logger.logger.lines[-1]
    resumed = _logger(200, start_iter=150)  # a resumed run counts its own iterations
    resumed.start_time = time.time() - 10.0
    resumed({'epoch': 3, 'iter': 169, 'lrs': [1e-3], 'time': 0.5, 'data_time': 0.0})
    assert '2.0 it/s' in resumed.logger.lines[-1] and 'eta: 0:00:15' in resumed.logger.lines[-1]


def test_data_loader_workers_are_capped_to_the_cores(capsys):
    opt = {'datasets': {'train': {'num_worker_per_gpu': 4}, 'val': {'name': 'v'}, 'test_1': {'num_worker_per_gpu': 1}}}
    cap_workers(opt, cores=2)
    assert opt['datasets']['train']['num_worker_per_gpu'] == 2 and opt['datasets']['test_1']['num_worker_per_gpu'] == 1
    assert 'num_worker_per_gpu' not in opt['datasets']['val']
    assert capsys.readouterr().out == ('basicsr: datasets:train:num_worker_per_gpu 4 lowered to 2, the cores '
                                       'available.\n')
