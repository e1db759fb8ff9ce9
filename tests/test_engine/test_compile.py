"""torch.compile of CSPSR (cspsr_arch/engine/compile.py): same outputs as eager, one graph for all sizes, fallback."""
import logging

import torch

import cspsr_arch.engine.compile as compile_mod
from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.engine.compile import DynamicSizeNetwork, compile_network


def test_compiled_tiny_cspsr_matches_eager_and_does_not_recompile_for_new_sizes(caplog):
    caplog.set_level(logging.WARNING, logger='torch.__trace')  # captured DEBUG traces make compiling 5x slower
    from torch._inductor.compile_fx import compile_fx
    torch._dynamo.reset()
    graphs = []

    def counting_inductor(gm, example_inputs):
        graphs.append(gm)
        return compile_fx(gm, example_inputs)

    torch.manual_seed(0)
    net = CSPSR(num_feat=4, num_dmf=1, upscale=2, cvm='given').eval()  # small graph: quick to compile
    compiled = compile_network(net, backend=counting_inductor)
    assert isinstance(compiled, DynamicSizeNetwork) and compiled.upscale == 2  # attributes are the network's
    with torch.no_grad():
        for size in [(9, 13), (12, 10), (7, 16)]:  # an image and tiles of other sizes
            lq, nir, disp = torch.rand(1, 3, *size), torch.rand(1, 1, *size), torch.rand(1, 1, *size) * 3
            out, ref = compiled(lq, nir, disp), net(lq, nir, disp)
            assert torch.allclose(out.sr, ref.sr, atol=1e-4) and torch.allclose(out.nir_sr, ref.nir_sr, atol=1e-4)
            if size == (9, 13):
                first = len(graphs)
    assert first == 1 and len(graphs) == 1  # one graph (no breaks), reused for the later sizes
    assert list(compiled.state_dict()) == list(net.state_dict())  # no _orig_mod. prefix
    torch._dynamo.reset()


def test_no_compiler_falls_back_to_eager_with_a_message(monkeypatch):
    monkeypatch.setattr(compile_mod.shutil, 'which', lambda name: None)
    messages = []
    net = CSPSR(num_feat=4, num_dmf=1, upscale=2, cvm='none')
    assert compile_network(net, torch.device('cpu'), log=messages.append) is net
    assert len(messages) == 1 and 'no C++ compiler found' in messages[0] and 'eager mode' in messages[0]
    assert 'g++' in messages[0]  # names what it looked for


def test_compiler_is_found_when_present(monkeypatch):
    monkeypatch.setattr(compile_mod.shutil, 'which', lambda name: f'/usr/bin/{name}')
    assert compile_mod.compiler_problem(torch.device('cpu')) is None
