"""The training log line of ``basicsr train``: BasicSR's ``MessageLogger`` with the iterations per second, the
iteration out of the total, and an ETA that never goes negative.

BasicSR estimates the time left as ``mean iteration time x (total - iteration - 1)``, which is -1 iteration at
the last one and prints ``eta: -1 day, 23:59:59``; the line also gives seconds per iteration only. Here::

    [CSPSR..][epoch:  1, iter:     40/2,000, lr:(9.99e-04,)] [eta: 0:06:31, 5.0 it/s, time (data): 0.200 (0.001)] l_pix: 1.2e-02
"""
import datetime
import time

from basicsr.utils.dist_util import master_only
from basicsr.utils.logger import MessageLogger


class ProgressLogger(MessageLogger):
    """BasicSR's ``MessageLogger`` (same options and tensorboard scalars) with the line above."""

    @master_only
    def __call__(self, log_vars: dict) -> None:
        """Log one line (see the module docstring).

        Args:
            log_vars: ``epoch``, ``iter``, ``lrs``, optionally ``time`` and ``data_time`` (seconds per iteration,
                averaged by BasicSR's timers), and the losses.
        """
        log_vars = dict(log_vars)
        epoch, current_iter, lrs = log_vars.pop('epoch'), log_vars.pop('iter'), log_vars.pop('lrs')
        message = (f'[{self.exp_name[:5]}..][epoch:{epoch:3d}, iter:{current_iter:8,d}/{self.max_iters:,d}, lr:('
                   + ''.join(f'{v:.3e},' for v in lrs) + ')] ')
        if 'time' in log_vars:
            iter_time, data_time = log_vars.pop('time'), log_vars.pop('data_time')
            done = max(current_iter - self.start_iter + 1, 1)
            elapsed = time.time() - self.start_time
            eta = max(elapsed / done * (self.max_iters - current_iter), 0.0)
            rate = done / elapsed if elapsed > 0 else 0.0
            message += (f'[eta: {datetime.timedelta(seconds=int(eta))}, {rate:.1f} it/s, '
                        f'time (data): {iter_time:.3f} ({data_time:.3f})] ')
        for key, value in log_vars.items():
            message += f'{key}: {value:.4e} '
            if self.use_tb_logger and 'debug' not in self.exp_name:
                self.tb_logger.add_scalar(f'losses/{key}' if key.startswith('l_') else key, value, current_iter)
        self.logger.info(message)
