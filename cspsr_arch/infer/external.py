"""Single-image SR checkpoints of other projects (a user's model zoo) behind ``basicsr infer`` and the benchmark.

``basicsr infer --model any.pth`` without ``-opt`` loads any checkpoint that the ``spandrel`` package recognises
from its weights alone (SwinIR, HAT, RCAN, ESRGAN / Real-ESRGAN, SPAN, OmniSR, DAT, ... : the list is
spandrel's), and ``tools/benchmark.py --external NAME=path.pth`` scores it on the benchmark's test splits as a
row of the report, without training it. Such a network reads the VIS image only. A checkpoint spandrel does not
recognise, one that is not super-resolution (a denoiser, a face restorer) or not RGB is refused in one sentence.
Input sizes the architecture cannot take (a multiple of its attention window, a minimum) are padded by
reflection and the output cropped back.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.infer.vis_only import VisOnlySR


class _Padded(nn.Module):
    """A spandrel model with its size requirements met: reflect-pad right and bottom, run, crop."""

    def __init__(self, descriptor) -> None:
        super().__init__()
        self.net, self.requirements, self.scale = descriptor.model, descriptor.size_requirements, descriptor.scale

    def forward(self, lq: Tensor) -> Tensor:
        height, width = lq.shape[-2:]
        pad_w, pad_h = self.requirements.get_padding(width, height)
        if pad_w or pad_h:
            mode = 'reflect' if pad_w < width and pad_h < height else 'replicate'
            lq = F.pad(lq, (0, pad_w, 0, pad_h), mode=mode)
        return self.net(lq)[..., :self.scale * height, :self.scale * width]


def load_external_model(model_path: str, device: Optional[torch.device] = None,
                        scale: Optional[int] = None) -> VisOnlySR:
    """A checkpoint of another project as a :class:`~cspsr_arch.infer.vis_only.VisOnlySR`, in eval mode.

    Args:
        model_path: The checkpoint (``.pth``, ``.safetensors``, ...).
        device: Default: CPU.
        scale: Scale the caller asks for; an error unless it is the network's.

    Returns:
        VisOnlySR: ``arch`` is spandrel's name of the architecture; ``upscale`` its scale.
    """
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError
    try:
        descriptor = ModelLoader(device=torch.device('cpu')).load_from_file(model_path)
    except FileNotFoundError:
        raise CSPSRInputError(f'{model_path} does not exist; pass the checkpoint file with --model.') from None
    except UnsupportedModelError:
        raise CSPSRInputError(f'{model_path}: spandrel does not recognise this checkpoint as an architecture it knows '
                              '(SwinIR, HAT, RCAN, ESRGAN, SPAN, ...). For a model trained with cspsr or BasicSR, '
                              'pass -opt with the options file it trained with.') from None
    except Exception as error:  # a corrupt file, another pickle: spandrel and torch raise many kinds
        raise CSPSRInputError(f'{model_path} cannot be loaded as a model checkpoint ({type(error).__name__}: '
                              f'{str(error).splitlines()[0][:160] if str(error) else "no message"}).') from None
    name = descriptor.architecture.name
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose != 'SR' or descriptor.scale < 2:
        raise CSPSRInputError(f'{model_path} is a {name} checkpoint for {getattr(descriptor, "purpose", "another task")} '
                              f'at x{getattr(descriptor, "scale", 1)}, not super-resolution; basicsr infer runs '
                              'super-resolution networks.')
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise CSPSRInputError(f'{model_path} is a {name} network for {descriptor.input_channels}-channel input and '
                              f'{descriptor.output_channels}-channel output; basicsr infer runs RGB networks.')
    if scale is not None and scale != descriptor.scale:
        raise CSPSRInputError(f'--scale {scale}, but {model_path} is a x{descriptor.scale} {name} network; use '
                              f'--scale {descriptor.scale}, or a checkpoint trained at x{scale}.')
    net = VisOnlySR(_Padded(descriptor), descriptor.scale, name)
    return net.eval().requires_grad_(False).to(device or torch.device('cpu'))
