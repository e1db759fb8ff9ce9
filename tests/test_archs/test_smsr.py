"""SMSR (Wang et al., CVPR 2021): shapes, size, masks, the sparse path against the dense masked computation,
the sparsity term, the temperature schedule and checkpoints."""
import io
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from cspsr_arch.archs import smsr_blocks
from cspsr_arch.archs.smsr_arch import PUBLISHED_PARAMS, SMSR
from cspsr_arch.archs.smsr_blocks import (SparseMaskBlock, SparseMaskModule, gumbel_noise, gumbel_softmax,
                                          hard_mask)
from cspsr_arch.engine import options as options_module
from cspsr_arch.engine.options import load_options

TINY = {'num_feat': 8, 'num_block': 2, 'squeeze_factor': 4}
OPTIONS = Path(__file__).resolve().parents[2] / 'options'


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny networks run in milliseconds: on one thread, without the OpenMP hand-offs that make them many times
    slower on a loaded 2-core machine; the previous setting is restored for the rest of the session."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _record_masks(monkeypatch):
    """Every (spatial, channel) mask pair the SMMs use, in call order."""
    seen = []
    masks = SparseMaskModule.masks

    def recording(self, x, tau):
        spa, ch = masks(self, x, tau)
        seen.append((spa, ch))
        return spa, ch

    monkeypatch.setattr(SparseMaskModule, 'masks', recording)
    return seen


def test_registered_and_built_from_options():
    assert ARCH_REGISTRY.get('SMSR') is SMSR
    net = build_network({'type': 'SMSR', 'upscale': 2, **TINY})
    assert isinstance(net, SMSR) and net.upscale == 2
    with torch.no_grad():
        assert net.eval()(torch.rand(1, 3, 6, 7)).shape == (1, 3, 12, 14)


@pytest.mark.parametrize('upscale, size', [(2, (13, 19)), (3, (13, 19)), (4, (13, 19)), (4, (16, 10)), (2, (1, 1)),
                                           (3, (5, 2))])
@pytest.mark.parametrize('mode', ['train', 'eval_dense', 'eval_sparse'])
def test_output_shape(upscale, size, mode):
    torch.manual_seed(0)
    net = SMSR(upscale=upscale, **TINY).train(mode == 'train')
    net.sparse_eval = mode == 'eval_sparse'
    with torch.set_grad_enabled(mode == 'train'):
        out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, upscale * size[0], upscale * size[1]) and torch.isfinite(out).all()


def test_paper_size_parameter_count():
    """The paper's layers (C = 64, 5 SMMs of 4 layers), counted by hand: 1,008,078 at x4. The published 1006 K
    (985 K / 993 K at x2 / x3) leave out the 5 x 4 x 64 x 2 channel-mask logits (2,560); without them the counts
    are 1,005,518 / 984,746 / 993,401, each within 0.05 % of the paper's."""
    c = 64
    conv = lambda cin, cout, k=3, bias=True: cin * cout * k * k + (cout if bias else 0)  # noqa: E731
    head = conv(3, c) + conv(c, c)
    hourglass = conv(c, c // 4) + conv(c // 4, c // 4) + conv(c // 4, 2)  # transposed conv: same count
    smb = 4 * conv(c, c, bias=False) + conv(4 * c, c, k=1)
    logits = 4 * c * 2
    attention = conv(c, c // 16, k=1) + conv(c // 16, c, k=1)
    fuse = conv(5 * c, c, k=1) + conv(c, c)
    for scale in (2, 3, 4):
        expected = head + 5 * (hourglass + smb + logits + attention) + fuse + conv(c, 3 * scale**2)
        assert _params(SMSR(upscale=scale)) == expected
        published = PUBLISHED_PARAMS[scale]
        assert abs(expected - 5 * logits - published) / published < 5e-4
        assert abs(expected - published) / published < 5e-3
    assert _params(SMSR()) == 1_008_078
    # the option files build the paper-size network at their scale
    for scale in (2, 4):
        opt = load_options(str(OPTIONS / f'train_SMSR_x{scale}.yml'))
        options_module.check_options({**opt, 'datasets': {}})  # only keys SMSR reads; upscale = scale
        assert opt['model_type'] == 'SRModel' and opt['scale'] == scale
        net = build_network(dict(opt['network_g']))
        assert _params(net) == _params(SMSR(upscale=scale)) and net.sparse_eval


def test_gumbel_softmax_known_answers():
    logits = torch.tensor([[0.3, -0.2], [1.0, 1.5], [-2.0, -2.0]])
    zero = torch.zeros_like(logits)
    # no noise: temperature 1 is the softmax; toward 0 the one-hot argmax, i.e. the hard mask (ties: off)
    assert torch.allclose(gumbel_softmax(logits, 1.0, -1, noise=zero), logits.softmax(-1))
    assert torch.allclose(gumbel_softmax(logits, 0.5, -1, noise=zero), (2 * logits).softmax(-1))
    cold = gumbel_softmax(logits[:2], 1e-4, -1, noise=zero[:2])
    assert torch.equal(cold, torch.tensor([[1., 0.], [0., 1.]]))
    assert torch.equal(hard_mask(logits, -1), torch.tensor([[0.], [1.], [0.]]))
    # with noise, toward 0 the one-hot argmax of logits + noise (a categorical sample)
    noise = torch.tensor([[0.0, 0.7], [0.6, 0.0], [0.1, 0.0]])
    assert torch.equal(gumbel_softmax(logits, 1e-4, -1, noise=noise), torch.tensor([[0., 1.], [1., 0.], [1., 0.]]))
    # the noise is Gumbel(0, 1): mean = Euler's gamma, variance = pi^2 / 6
    torch.manual_seed(0)
    g = gumbel_noise(torch.empty(400_000))
    assert abs(g.mean().item() - 0.5772) < 0.01 and abs(g.var().item() - math.pi**2 / 6) < 0.03
    # sampling: the on-frequency at temperature ~0 is softmax(logits)[on]
    torch.manual_seed(1)
    draws = gumbel_softmax(torch.tensor([0.0, 1.0]).expand(100_000, 2), 1e-3, -1)
    assert abs(draws[:, 1].mean().item() - torch.tensor([0.0, 1.0]).softmax(0)[1].item()) < 0.01


def test_masks_are_hard_in_eval_and_soft_samples_in_training(monkeypatch):
    torch.manual_seed(0)
    net = SMSR(**TINY)
    x = torch.rand(2, 3, 9, 11)
    seen = _record_masks(monkeypatch)
    with torch.no_grad():
        first = net.eval()(x)
        assert torch.equal(net(x), first)  # no noise at test: deterministic
    for spa, ch in seen:
        assert spa.shape == (2, 1, 9, 11) and ch.shape == (4, 8)
        assert set(spa.unique().tolist()) <= {0.0, 1.0} and set(ch.unique().tolist()) <= {0.0, 1.0}
    for block, (spa, ch) in zip(net.body, seen):  # the argmax of the logits
        assert torch.equal(ch, (block.body.ch_logits[..., 1] > block.body.ch_logits[..., 0]).float())
    assert 0 < float(torch.cat([s.flatten() for s, _ in seen]).mean()) < 1  # both kinds present
    seen.clear()
    net.train()
    out_a, out_b = net(x), net(x)
    assert not torch.equal(out_a, out_b)  # fresh Gumbel noise every pass
    for spa, ch in seen:
        assert ((spa > 0) & (spa < 1)).float().mean() > 0.9 and ((ch > 0) & (ch < 1)).float().mean() > 0.9


def test_network_sparse_eval_equals_dense_masked_eval(monkeypatch):
    torch.manual_seed(2)
    net = SMSR(upscale=3, **TINY).double().eval()
    x = torch.rand(2, 3, 11, 8, dtype=torch.float64)
    seen = _record_masks(monkeypatch)
    calls = []

    def spy(name):
        method = getattr(SparseMaskBlock, name)
        return lambda self, *args: calls.append(name) or method(self, *args)

    for name in ('forward', 'forward_sparse'):
        monkeypatch.setattr(SparseMaskBlock, name, spy(name))
    with torch.no_grad():
        net.sparse_eval = False
        dense = net(x)
        assert calls == ['forward'] * 2
        net.sparse_eval = True
        sparse = net(x)
        assert calls == ['forward'] * 2 + ['forward_sparse'] * 2  # the sparse path is the one taken
        net.train()(x)  # training always computes densely with soft masks
        assert calls[-2:] == ['forward'] * 2
    assert torch.allclose(dense, sparse, atol=1e-10)
    spa = torch.cat([s.flatten() for s, _ in seen])
    assert 0.05 < float(spa.mean()) < 0.95  # some positions skipped, some computed


def test_sparsity_term(monkeypatch):
    """Training: a differentiable density whose gradient reaches both mask generators. Eval: the hard masks'
    fraction of computed features, mean over SMMs of mean over layers of (1 - ch + ch * mean(spa))."""
    torch.manual_seed(0)
    net = SMSR(**TINY)
    x = torch.rand(2, 3, 10, 12)
    net.train()(x)
    assert net.sparsity.requires_grad and 0 < float(net.sparsity.detach()) < 1
    net.sparsity.backward()
    block = net.body[0]
    assert block.body.ch_logits.grad.abs().sum() > 0 and block.spa_mask.up.weight.grad.abs().sum() > 0
    seen = _record_masks(monkeypatch)
    with torch.no_grad():
        net.eval()(x)
    want = sum((1 - ch + ch * spa.mean()).mean() for spa, ch in seen) / len(seen)
    assert abs(float(net.sparsity) - float(want)) < 1e-6
    # all positions off (the hourglass says "off" everywhere) and every channel sparse: nothing computed
    with torch.no_grad():
        for module in net.body:
            module.spa_mask.up.weight.zero_()
            module.spa_mask.up.bias.copy_(torch.tensor([1.0, -1.0]))
            module.body.ch_logits.copy_(torch.tensor([-1.0, 1.0]))
        net(x)
        assert float(net.sparsity) == 0.0
        for module in net.body:  # every channel dense: everything computed
            module.body.ch_logits.copy_(torch.tensor([1.0, -1.0]))
        net(x)
        assert float(net.sparsity) == 1.0
    # training mode with logits far beyond the Gumbel noise's range samples the same masks as eval
    net.train()
    for on, ch_sparse, want in [(False, True, 0.0), (True, True, 1.0), (False, False, 1.0)]:
        with torch.no_grad():
            for module in net.body:
                module.spa_mask.up.bias.copy_(torch.tensor([-50.0, 50.0] if on else [50.0, -50.0]))
                module.body.ch_logits.copy_(torch.tensor([-50.0, 50.0] if ch_sparse else [50.0, -50.0]))
            net(x)
        assert abs(float(net.sparsity) - want) < 1e-6, (on, ch_sparse)


def test_temperature_schedule(monkeypatch):
    net = SMSR(tau_min=0.5, tau_steps=10, **TINY)
    taus = []
    gumbel = smsr_blocks.gumbel_softmax
    monkeypatch.setattr(smsr_blocks, 'gumbel_softmax', lambda logits, tau, dim: taus.append(float(tau)) or
                        gumbel(logits, tau, dim))
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        net.eval()(x)
        assert int(net.step) == 0 and not taus  # eval: no step, no Gumbel noise
        net.train()
        for _ in range(7):
            net(x)
    assert int(net.step) == 7
    per_pass = 2 * TINY['num_block']  # a spatial and a channel mask per SMM
    want = [max(0.5, 1 - k / 10) for k in range(1, 8)]
    assert taus == pytest.approx([t for t in want for _ in range(per_pass)])
    # the defaults: the release's pace, 0.4 reached at 300 k training passes
    paper = SMSR(**TINY)
    for step, tau in [(0, 1.0), (250_000, 0.5), (300_000, 0.4), (450_000, 0.4)]:
        paper.step.fill_(step)
        assert float(paper.tau()) == pytest.approx(tau)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net = SMSR(upscale=2, **TINY)
    with torch.no_grad():
        for _ in range(3):
            net.train()(torch.rand(1, 3, 8, 8))
    state = net.state_dict()
    assert int(state['step']) == 3 and 'mean' not in state
    assert any(key.endswith('ch_logits') for key in state)
    path = tmp_path / 'smsr.pth'
    torch.save(state, path)
    torch.manual_seed(1)
    other = SMSR(upscale=2, **TINY)
    x = torch.rand(2, 3, 7, 9)
    with torch.no_grad():
        assert not torch.allclose(other.eval()(x), net.eval()(x))
        other.load_state_dict(torch.load(path), strict=True)
        assert torch.equal(other(x), net(x)) and int(other.step) == 3
        assert float(other.tau()) == float(net.tau())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with pytest.raises(RuntimeError):  # strict: a different shape (upscale) does not load
        SMSR(upscale=4, **TINY).load_state_dict(torch.load(io.BytesIO(buffer.getvalue())), strict=True)


@pytest.mark.parametrize('kwargs', [{'num_in_ch': 1}, {'squeeze_factor': 16}, {'upscale': 0}, {'tau_min': 0.0},
                                    {'rgb_mean': (0.5, )}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        SMSR(**{**TINY, **kwargs})


def test_forward_wiring_and_bicubic_skip():
    """The output is head -> SMMs (each: channel attention of its SMB's output plus its input) -> 1x1 fusion of
    all SMM outputs, ReLU, 3x3 conv, plus the head's output -> conv + pixel shuffle, plus the bicubic-upsampled
    input; with the tail's conv zero, exactly the bicubic upsampling of the input."""
    torch.manual_seed(0)
    net = SMSR(upscale=3, **TINY).double().eval()
    x = torch.rand(2, 3, 7, 6, dtype=torch.float64)
    mean = torch.tensor([0.4488, 0.4371, 0.4040], dtype=torch.float64).view(1, 3, 1, 1)
    x0 = (x - mean) * 255
    with torch.no_grad():
        head = net.head(x0)
        feat, outs = head, []
        for module in net.body:
            spa, ch = module.masks(feat, 1.0)
            feat = module.ca(module.body(feat, spa, ch)) + feat
            outs.append(feat)
        res = net.fuse[2](F.relu(net.fuse[0](torch.cat(outs, 1)))) + head
        up = F.interpolate(x0, scale_factor=3, mode='bicubic', align_corners=False)
        want = (F.pixel_shuffle(net.tail[0](res), 3) + up) / 255 + mean
        assert torch.allclose(net(x), want, atol=1e-10)
        net.tail[0].weight.zero_()
        net.tail[0].bias.zero_()
        bicubic = F.interpolate(x, scale_factor=3, mode='bicubic', align_corners=False)
        assert torch.allclose(net(x), bicubic, atol=1e-10)


def test_minimising_the_sparsity_term_makes_the_eval_masks_sparser():
    """The term works as the paper's regulariser: a few Adam steps on it alone (no SR loss) cut the fraction of
    features the hard masks compute at test time."""
    torch.manual_seed(0)
    net = SMSR(**TINY)
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        net.eval()(x)
    before = float(net.sparsity)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    net.train()
    for _ in range(20):
        optimizer.zero_grad()
        net(x)
        net.sparsity.backward()
        optimizer.step()
    with torch.no_grad():
        net.eval()(x)
    assert float(net.sparsity) < before - 0.2, (before, float(net.sparsity))
