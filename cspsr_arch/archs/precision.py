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
from typing import Callable

import torch


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
