"""Parts of the networks that keep float32 under half-precision autocast (``basicsr infer --half``,
``torch.autocast``): measured on the released CSPSR, bf16 inputs to the country test pairs.

* Everything under autocast: -0.022 dB on average against fp32, one image -0.09 dB. The output itself was
  bf16 (8 bits of mantissa: about one grey level at 255), and the cross-view matching's cost volume in bf16
  picked other disparities.
* Reconstruction heads in fp32: -0.018 dB on average, at most -0.05.
* Heads and cross-view matching in fp32: +0.002 dB on average, at most 0.012 dB. The DMF body (most of the
  arithmetic) stays in half precision.
"""
import functools
from typing import Callable, Optional

import torch

from cspsr_arch.errors import CSPSRInputError


def full_precision(method: Callable) -> Callable:
    """Run a module method in float32 under autocast: autocast off inside, its floating-point tensor arguments
    cast to float32 (a no-op outside autocast, where they already are).

    Args:
        method: ``forward``-like method of an ``nn.Module``.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        tensors = [a for a in (*args, *kwargs.values()) if torch.is_tensor(a)]
        device = tensors[0].device.type if tensors else 'cpu'
        with torch.autocast(device, enabled=False):
            args = tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
            kwargs = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in kwargs.items()}
            return method(self, *args, **kwargs)

    return wrapper


def half_dtype(device: torch.device) -> torch.dtype:
    """The half-precision type of ``--half`` on ``device``: bf16 where the hardware has it (its range is fp32's, so
    nothing overflows), else fp16 on a GPU; on a CPU without bf16 instructions an error (bf16 is emulated there:
    the released CSPSR ran 8x slower than in fp32 on an AVX2 CPU).

    Args:
        device: Where the network runs.
    """
    if device.type == 'cuda':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == 'cpu' and _cpu_has_bf16():
        return torch.bfloat16
    raise CSPSRInputError(f'--half: this {device.type.upper()} has no bf16 instructions (avx512_bf16 or AMX), where '
                          'half precision is emulated and runs several times slower than fp32; leave --half out.')


AMP_TYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def amp_dtype(value: object, device: torch.device) -> Optional[torch.dtype]:
    """The autocast type of ``train: amp`` (None: off, the default) on ``device``.

    bf16 keeps fp32's range (no loss scaling) and needs bf16 instructions on a CPU (emulated, it trains slower
    than fp32); fp16 needs a GPU and a gradient scaler (``CSPSRModel`` uses ``torch.amp.GradScaler``).

    Args:
        value: The option: None, ``'bf16'`` or ``'fp16'``.
        device: Where the model trains.
    """
    if value is None:
        return None
    if value not in AMP_TYPES:
        raise CSPSRInputError(f'train:amp is {value!r}: use bf16 or fp16, or leave it out for fp32 training.')
    if device.type == 'cpu' and value == 'fp16':
        raise CSPSRInputError('train:amp: fp16 trains on a GPU; on a CPU use bf16 (where the CPU has bf16 '
                              'instructions) or leave train:amp out.')
    if device.type == 'cpu' and not _cpu_has_bf16():
        raise CSPSRInputError('train:amp: bf16: this CPU has no bf16 instructions (avx512_bf16 or AMX), where half '
                              'precision is emulated and trains slower than fp32; leave train:amp out.')
    return AMP_TYPES[value]


def _cpu_has_bf16() -> bool:
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
