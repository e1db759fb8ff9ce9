"""``torch.compile`` of a network for inference or training, with a fallback to eager mode.

Used by ``basicsr infer --compile``, ``tools/profile_model.py --compile``, ``tools/benchmark.py
--compile`` (evaluation and the training-throughput figures) and ``train: compile: true``.

Inductor fuses the element-wise passes of CSPSR (the per-pixel dynamic filtering, CSFT's gates, the
warp and the correlation of the learned CVM) into a few loops over the feature maps, which eager
PyTorch runs one pass at a time. Compiling costs time once per process (about a minute for
``CSPSR()`` on a 2-core CPU), so it is off by default: it pays on many images or long training runs.

For inference the height and width of the inputs are marked dynamic, so whole images and tiles of any
size reuse one compiled graph instead of compiling per size. Training compiles for its fixed patch
size (static shapes, the fastest kernels); only the training step runs compiled, the module itself is
unchanged, so its ``state_dict`` (what checkpoints hold) has no ``_orig_mod.`` prefix.

On the CPU inductor needs a C++ compiler: without one, :func:`compile_network` says so and returns the
network unchanged (eager mode) instead of failing at the first forward pass.
"""
import shutil
from typing import Callable, Optional

import torch
from torch import Tensor, nn


def compiler_problem(device: torch.device) -> Optional[str]:
    """Why inductor cannot compile for ``device`` here, or None when it can.

    Args:
        device (torch.device): Where the network runs (CPU kernels are C++, GPU kernels Triton).
    """
    if device.type == 'cuda':
        try:
            import triton  # noqa: F401
        except ImportError:
            return 'Triton is not installed (pip install triton)'
        return None
    from torch._inductor import config
    candidates = [c for c in (config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx, )) if c]
    if not any(shutil.which(c) for c in candidates):
        return (f"no C++ compiler found (looked for {', '.join(candidates)}; install one, e.g. apt-get install g++, "
                'or name it in the CXX environment variable)')
    return None


class DynamicSizeNetwork:
    """Calls a compiled network with the height and width of its 4-d tensor inputs marked dynamic.

    Other attributes are the original network's (``net.upscale``, ``net.eval()``, ``net.state_dict()``
    ...), so it can stand in for the network wherever that is called.

    Args:
        net (nn.Module): The network.
        compiled (Callable): ``torch.compile(net, ...)``.
    """

    def __init__(self, net: nn.Module, compiled: Callable) -> None:
        self.net, self.compiled = net, compiled

    def __getattr__(self, name: str):
        return getattr(self.net, name)

    def __call__(self, *args, **kwargs):
        for value in list(args) + list(kwargs.values()):
            if isinstance(value, Tensor) and value.dim() == 4:
                torch._dynamo.maybe_mark_dynamic(value, 2)
                torch._dynamo.maybe_mark_dynamic(value, 3)
        return self.compiled(*args, **kwargs)


def compile_network(net: nn.Module, device: Optional[torch.device] = None, dynamic_size: bool = True,
                    log: Callable[[str], None] = print, backend: str = 'inductor') -> Callable:
    """``torch.compile`` of ``net``, or ``net`` itself (with a message) where it cannot be compiled.

    Compilation happens at the first call (and once more for a new batch size, dtype or train/eval
    mode), not here.

    Args:
        net (nn.Module): The network (parameters shared with the result: optimise ``net.parameters()``).
        device (torch.device | None): Where it runs; default: where its parameters are.
        dynamic_size (bool): Mark the height and width of 4-d inputs dynamic (inference on images and
            tiles of any size); False: static shapes (training on fixed patches). Default: True.
        log (Callable): Receives the fallback message. Default: print.
        backend (str): ``torch.compile`` backend. Default: ``'inductor'``.

    Returns:
        Callable: Called like ``net``; ``net`` itself without a compiler, a :class:`DynamicSizeNetwork` with
        ``dynamic_size``, else the ``torch.compile`` module.
    """
    if device is None:
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
    problem = compiler_problem(device) if backend == 'inductor' else None
    if problem is not None:
        log(f'torch.compile is not available: {problem}. Running the network in eager mode (same results, slower).')
        return net
    if not dynamic_size:
        return torch.compile(net, backend=backend, dynamic=False)
    return DynamicSizeNetwork(net, torch.compile(net, backend=backend, dynamic=None))
