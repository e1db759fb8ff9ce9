"""Checkpoints: the one reader of network files, atomic writes, and a guard against a non-finite loss.

:func:`read_state_dict` is the one place that opens a network checkpoint (``basicsr infer``, the
disparity network of ``pretrain_network_disp``, the tools): it picks the state dict under
``params_ema`` / ``params``, drops the prefixes of wrappers (:func:`bare_key`) and says in one sentence
what is wrong with a missing, truncated or foreign file. Saving writes the same bare keys.

BasicSR writes ``net_g_<iter>.pth`` and ``<iter>.state`` with ``torch.save`` straight into place, so a
process killed while writing (SIGKILL, out of memory, a full disk) leaves a truncated file that
``--auto_resume`` then picks up; and a loss that turns NaN keeps training and saves NaN weights over the
last good ones. :class:`AtomicCheckpointMixin` (used by ``CSPSRModel`` and ``CrossSpectralStereoModel``)
writes each file to a temporary name in the same folder and renames it into place, and refuses to save
non-finite weights; :func:`check_finite_loss` stops training at the first NaN/inf loss with
:class:`TrainingDiverged`, before the optimizer step can spoil the weights.
"""
import contextlib
import os
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.distributed as dist
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from torch import Tensor, nn

from cspsr_arch.engine.resume import latest_state
from cspsr_arch.errors import CSPSRInputError

SAVE_RETRIES = 3
PARAM_KEYS = ('params_ema', 'params')
"""Keys under which BasicSR's models save state dicts, in the order :func:`read_state_dict` prefers them."""
WRAPPER_PREFIXES = ('module.', '_orig_mod.')
"""State-dict key prefixes of wrappers: (Distributed)DataParallel's ``module.``, ``torch.compile``'s ``_orig_mod.``."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the iteration, the terms and the last checkpoint."""


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written after :data:`SAVE_RETRIES` attempts: training stops rather than
    carry on without checkpoints (a later crash would then lose everything since the last one)."""


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` that never leaves a partly written ``path``.

    The object is written to a temporary file in the same folder, flushed to disk, and renamed over
    ``path`` (``os.replace`` is atomic on POSIX and Windows): a reader sees the old file or the new one.
    The temporary name starts with a dot, so BasicSR's and cspsr's checkpoint scans never see it; the
    temporary files of earlier writers of ``path`` that were killed are removed after a successful save.

    Args:
        obj (Any): What to save.
        path (str): Destination file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    prefix = f'.{os.path.basename(path)}.'
    for name in os.listdir(folder):
        if name.startswith(prefix) and name.endswith('.tmp'):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def bare_key(key: str) -> str:
    """A state-dict key without the prefixes of wrappers (:data:`WRAPPER_PREFIXES`)."""
    for prefix in WRAPPER_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def bare_state_dict(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """``state`` with :func:`bare_key` keys, so that a checkpoint loads into the network itself."""
    return {bare_key(k): v for k, v in state.items()}


def read_state_dict(path: str, param_key: Optional[str] = None, ema_falls_back: bool = False,
                    what: str = 'Checkpoint', hint: str = '') -> Tuple[Dict[str, Tensor], str]:
    """The state dict in a network checkpoint file (keys bare of wrappers), and the key it was under.

    Every error is a :class:`~cspsr_arch.errors.CSPSRInputError` in one sentence (the command line prints
    it without a traceback): a missing file, a truncated one, a missing key, a file that holds no weights.

    Args:
        path (str): ``.pth`` file, as BasicSR's models save it (``{'params': ..., 'params_ema': ...}``)
            or a bare state dict.
        param_key (str | None): ``params`` or ``params_ema``; None: the first of :data:`PARAM_KEYS` the
            file has (the EMA weights BasicSR validates with), else the file itself.
        ema_falls_back (bool): Take ``params`` when ``param_key`` is ``params_ema`` and the file has no EMA
            weights (a network trained without EMA). Default: False (the key must be there).
        what (str): What the file is, for the message of a missing file. Default: ``'Checkpoint'``.
        hint (str): How to get or point at the right file, appended to the messages. Default: none.

    Returns:
        tuple[dict, str]: The state dict and the key used (``''`` for a bare state dict).
    """
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise CSPSRInputError(f'{what} not found: {path}. {hint}'.rstrip()) from None
    except Exception as err:
        raise CSPSRInputError(f'{path} is not a readable PyTorch checkpoint (corrupt or truncated file?): '
                              f'{str(err).splitlines()[0][:200] if str(err) else type(err).__name__}') from None
    if not isinstance(ckpt, Mapping):
        raise CSPSRInputError(f'{path} holds a {type(ckpt).__name__}, not a state dict.')
    if param_key is not None:
        if param_key not in ckpt and ema_falls_back and param_key == 'params_ema' and 'params' in ckpt:
            param_key = 'params'
        if param_key not in ckpt:
            raise CSPSRInputError(f"{path} has no '{param_key}' entry; it has {', '.join(map(str, ckpt))[:200]}. "
                                  f'{hint}'.rstrip())
        state, used = ckpt[param_key], param_key
    else:
        used = next((k for k in PARAM_KEYS if k in ckpt), '')
        state = ckpt[used] if used else ckpt
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CSPSRInputError(f'{path} is not a network checkpoint (no params / params_ema state dict).')
    return bare_state_dict(state), used


def _save_with_retries(obj: Any, path: str, what: str) -> None:
    """Save with :func:`atomic_torch_save`, retrying a passing ``OSError``; raise :class:`CheckpointSaveError`
    when every attempt failed."""
    for attempt in range(1, SAVE_RETRIES + 1):
        try:
            atomic_torch_save(obj, path)
            return
        except OSError as err:
            error = err
            get_root_logger().warning(f'Cannot save {what} {path} (attempt {attempt}/{SAVE_RETRIES}): {err}')
            if attempt < SAVE_RETRIES:
                time.sleep(1)
    message = (f'Training stopped: cannot save the {what} {path} ({error}) after {SAVE_RETRIES} attempts. Free disk '
               f'space or fix the permissions of {os.path.dirname(os.path.abspath(path))}, then continue with '
               '--auto_resume (the previous checkpoints are unchanged).')
    get_root_logger().error(message)
    raise CheckpointSaveError(message) from error


def _reduce_flag(bad: bool, device: torch.device) -> bool:
    """True if ``bad`` on any process (in distributed training all processes must reach this call)."""
    if not (dist.is_available() and dist.is_initialized()):
        return bad
    flag = torch.tensor([1.0 if bad else 0.0], device=device)
    dist.all_reduce(flag)
    return flag.item() > 0


def check_finite_loss(loss: Tensor, terms: Mapping[str, Tensor], current_iter: int, opt: Mapping) -> None:
    """Stop training with :class:`TrainingDiverged` when ``loss`` is NaN or infinite (on any process).

    Call it before ``loss.backward()``: the weights are then still those of the last finite step, and
    nothing is saved for this iteration, so the last checkpoint stays the newest one.

    Args:
        loss (Tensor): Total loss of the step.
        terms (Mapping[str, Tensor]): Named loss terms, for the message.
        current_iter (int): Iteration number, for the message.
        opt (Mapping): Model options (``path:training_states`` names the last checkpoint).
    """
    if not _reduce_flag(not bool(torch.isfinite(loss.detach()).all()), loss.device):
        return
    values = ', '.join(f'{name}: {float(value.detach().mean()):.4g}' for name, value in terms.items())
    state = latest_state((opt.get('path') or {}).get('training_states') or '')
    if state is None:
        where = 'No checkpoint was saved before it.'
    else:
        it = os.path.splitext(os.path.basename(state))[0]
        models = (opt.get('path') or {}).get('models', '')
        where = (f'The last checkpoint, {state} with {os.path.join(models, f"net_g_{it}.pth")}, is intact '
                 '(nothing was saved after it).')
    message = (f'Training stopped at iter {current_iter}: the loss is not finite ({values}). {where} Lower '
               'train:optim_g:lr, add a warm-up (train:warmup_iter) or check the data, then continue with '
               '--auto_resume.')
    get_root_logger().error(message)
    raise TrainingDiverged(message)


def _non_finite(state_dict: Mapping[str, Tensor]) -> List[str]:
    return [k for k, v in state_dict.items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]


class AtomicCheckpointMixin:
    """BasicSR model mixin: ``save_network`` / ``save_training_state`` that write atomically (rank 0 only,
    as BasicSR's) and never write non-finite weights. Put it before ``SRModel`` in the bases."""

    @master_only
    def save_network(self, net: Union[nn.Module, List[nn.Module]], net_label: str, current_iter: int,
                     param_key: Union[str, List[str]] = 'params') -> None:
        """Save ``net`` (or several, under several keys) to ``models/<net_label>_<iter|latest>.pth``.

        Args:
            net (nn.Module | list[nn.Module]): Network(s).
            net_label (str): File-name prefix (``net_g``).
            current_iter (int): Iteration; -1 for ``latest``.
            param_key (str | list[str]): Key(s) of the state dicts in the file. Default: ``'params'``.
        """
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError(f'{len(nets)} networks but {len(keys)} param keys.')
        save_dict: Dict[str, Dict[str, Tensor]] = {}
        for net_, key in zip(nets, keys):
            state = {k: v.detach().cpu() for k, v in bare_state_dict(self.get_bare_model(net_).state_dict()).items()}
            bad = _non_finite(state)
            if bad:
                raise TrainingDiverged(f'Not saving {net_label} ({key}) at iter {current_iter}: {len(bad)} weight '
                                       f'tensor(s) hold NaN/inf (first: {bad[0]}); the previous checkpoints are kept.')
            save_dict[key] = state
        label = 'latest' if current_iter == -1 else current_iter
        path = os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth')
        _save_with_retries(save_dict, path, 'network')

    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """Save optimizers and schedulers to ``training_states/<iter>.state`` (nothing for ``iter == -1``).

        Args:
            epoch (int): Current epoch.
            current_iter (int): Current iteration.
        """
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter,
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers]}
        path = os.path.join(self.opt['path']['training_states'], f'{current_iter}.state')
        _save_with_retries(state, path, 'training state')

