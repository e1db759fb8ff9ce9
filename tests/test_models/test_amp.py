"""``train: amp`` of CSPSRModel: the training step under autocast (bf16, or fp16 with a gradient scaler), the
refusals where the hardware has no such type, and validation in fp32."""
import copy

import pytest
import torch
import torch.nn.functional as F
from basicsr.models import build_model
from test_cspsr_model import _batch, _opt

from cspsr_arch.archs import precision
from cspsr_arch.errors import CSPSRInputError


def _amp_opt(amp):
    opt = _opt()
    opt['train']['amp'] = amp
    del opt['train']['cssc_opt']
    return opt


def test_the_amp_type_follows_the_option_and_the_hardware(monkeypatch):
    cpu, cuda = torch.device('cpu'), torch.device('cuda')
    assert precision.amp_dtype(None, cpu) is None
    with pytest.raises(CSPSRInputError, match="train:amp is 'fp32': use bf16 or fp16"):
        precision.amp_dtype('fp32', cpu)
    with pytest.raises(CSPSRInputError, match='fp16 trains on a GPU'):
        precision.amp_dtype('fp16', cpu)
    monkeypatch.setattr(precision, '_cpu_has_bf16', lambda: False)
    with pytest.raises(CSPSRInputError, match='this CPU has no bf16 instructions'):
        precision.amp_dtype('bf16', cpu)
    monkeypatch.setattr(precision, '_cpu_has_bf16', lambda: True)
    assert precision.amp_dtype('bf16', cpu) == torch.bfloat16
    assert precision.amp_dtype('fp16', cuda) == torch.float16 and precision.amp_dtype('bf16', cuda) == torch.bfloat16


def test_a_bf16_step_computes_its_loss_under_autocast(tmp_path, monkeypatch):
    """The logged loss is the one of the network under bf16 autocast (computed here by hand), not the fp32 one."""
    monkeypatch.setattr(precision, '_cpu_has_bf16', lambda: True)  # emulated here: slow, but the same numbers
    torch.manual_seed(0)
    model = build_model(_amp_opt('bf16'))
    assert model.amp == torch.bfloat16 and model.scaler is None
    batch = _batch(tmp_path)
    model.feed_data(batch)
    net = copy.deepcopy(model.net_g)  # the weights before the step (BatchNorm in training mode, as in the step)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        expected = F.mse_loss(net(batch['lq'], batch['lq_nir']).sr, batch['gt']).item()
    full = F.mse_loss(copy.deepcopy(net)(batch['lq'], batch['lq_nir']).sr, batch['gt']).item()
    before = [p.clone() for p in model.net_g.parameters()]
    model.optimize_parameters(1)
    assert model.get_current_log()['l_pix'] == pytest.approx(expected, rel=1e-6)
    assert abs(expected - full) > 1e-7  # the two differ: the test tells autocast from fp32
    assert all(p.dtype == torch.float32 for p in model.net_g.parameters())  # fp32 master weights, updated
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    model.test()
    assert model.output.dtype == torch.float32


def test_fp16_goes_through_the_gradient_scaler(tmp_path, monkeypatch):
    """fp16 trains on GPUs only; here the CPU's fp16 autocast stands in for it to run the scaler's path."""
    monkeypatch.setattr(precision, 'amp_dtype', lambda value, device: torch.float16 if value == 'fp16' else None)
    import cspsr_arch.models.cspsr_model as model_mod
    monkeypatch.setattr(model_mod, 'amp_dtype', precision.amp_dtype)
    model = build_model(_amp_opt('fp16'))
    assert isinstance(model.scaler, torch.amp.GradScaler)
    scaled, stepped = [], []
    scale, step = model.scaler.scale, model.scaler.step
    monkeypatch.setattr(model.scaler, 'scale', lambda loss: scaled.append(loss.item()) or scale(loss))
    monkeypatch.setattr(model.scaler, 'step', lambda opt: stepped.append(opt) or step(opt))
    model.feed_data(_batch(tmp_path))
    before = [p.clone() for p in model.net_g.parameters()]
    model.optimize_parameters(1)
    assert scaled == [pytest.approx(model.get_current_log()['l_pix'])] and stepped == [model.optimizer_g]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))


def test_amp_is_a_known_option_and_checked_on_load(tmp_path):
    from cspsr_arch.engine.options import TRAIN_KEYS
    assert 'amp' in TRAIN_KEYS
    with pytest.raises(CSPSRInputError, match="train:amp is 'yes'"):
        build_model(_amp_opt('yes'))
