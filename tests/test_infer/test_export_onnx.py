"""``tools/export_onnx.py`` (``cspsr_arch.infer.onnx``): a CSPSR with learned matching exported with dynamic sizes,
checked with onnxruntime."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import yaml

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.infer.onnx import export_checked

ROOT = Path(__file__).resolve().parents[2]
NET = {'num_feat': 8, 'num_dmf': 2, 'upscale': 2, 'max_disp': 4}


def test_export_with_dynamic_size_matches_pytorch(tmp_path, capsys):
    torch.manual_seed(0)
    net = CSPSR(**NET)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    torch.save({'params': net.state_dict()}, tmp_path / 'net_g.pth')
    opt = tmp_path / 'net.yml'
    opt.write_text(yaml.safe_dump({'network_g': {'type': 'CSPSR', **NET}}))
    rc = export_checked(str(opt), str(tmp_path / 'net_g.pth'), out=str(tmp_path / 'm.onnx'), check_size=(29, 45),
                        json_path=str(tmp_path / 'f.json'))
    assert rc == 0, capsys.readouterr().err
    figures = json.loads((tmp_path / 'f.json').read_text())
    assert figures['opset'] == 18 and figures['check_size'] == [29, 45]
    assert set(figures['max_abs_diff']) == {'sr', 'nir_sr', 'disp_l'}
    assert max(figures['max_abs_diff'].values()) < 1e-4
    assert 'max abs difference: sr ' in capsys.readouterr().out

    assert sorted(p.name for p in tmp_path.glob('m.onnx*')) == ['m.onnx']  # weights inside, no .onnx.data
    model = onnx.load(str(tmp_path / 'm.onnx'))
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    assert [i.name for i in model.graph.input] == ['lq', 'lq_nir']
    assert dims[0] == [1, 3, 'height', 'width'] and dims[1] == [1, 1, 'height', 'width']
    ops = {node.op_type for node in model.graph.node}
    assert {'GridSample', 'Softmax', 'DepthToSpace'} <= ops  # the warp, the kernels/matching, pixel shuffle
    # a third size, straight through onnxruntime
    session = ort.InferenceSession(str(tmp_path / 'm.onnx'), providers=['CPUExecutionProvider'])
    lq, nir = torch.rand(1, 3, 17, 38), torch.rand(1, 1, 17, 38)
    sr = session.run(['sr'], {'lq': lq.numpy(), 'lq_nir': nir.numpy()})[0]
    with torch.no_grad():
        ref = net.eval()(lq, nir).sr.numpy()
    assert sr.shape == (1, 3, 34, 76) and np.abs(sr - ref).max() < 1e-4


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    torch.save({'params': CSPSR(**{**NET, 'upscale': 4}).state_dict()}, tmp_path / 'x4.pth')
    opt = tmp_path / 'net.yml'
    opt.write_text(yaml.safe_dump({'network_g': {'type': 'CSPSR', **NET}}))
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'export_onnx.py'), '-opt', str(opt), '--model',
                          str(tmp_path / 'x4.pth')], capture_output=True, text=True, timeout=600)
    assert out.returncode == 2, out.stderr[-3000:]
    err = out.stderr
    assert err.startswith('export_onnx: error: ') and 'x4' in err and 'does not fit network_g' in err
    assert not (tmp_path / 'x4.onnx').exists()
