"""A run resumed from a checkpoint continues exactly like the uninterrupted run (optimizer moments, schedule)."""
from pathlib import Path

import pytest
import torch
from basicsr.models import build_model

from cspsr_arch.engine.resume import load_resume_state

ITERS, STOP = 6, 3


def _options(root: Path) -> dict:
    return {
        'name': 'resume', 'model_type': 'CSPSRModel', 'scale': 2, 'num_gpu': 0, 'dist': False, 'rank': 0,
        'world_size': 1, 'is_train': True, 'auto_resume': False, 'datasets': {},
        'network_g': {'type': 'CSPSR', 'num_feat': 4, 'num_dmf': 1, 'upscale': 2, 'cvm': 'given'},
        'path': {'models': str(root / 'models'), 'training_states': str(root / 'training_states'),
                 'pretrain_network_g': None, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-2, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [STOP + 2], 'gamma': 0.1},
                  'total_iter': ITERS, 'warmup_iter': -1, 'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0},
                  'cssc_opt': {'type': 'CrossSpectralSpatialConsistencyLoss', 'loss_weight': 0.1}},
    }


def _batches():
    torch.manual_seed(1)
    disp = torch.full((2, 1, 6, 8), 1.0)
    return [{'lq': torch.rand(2, 3, 6, 8), 'lq_nir': torch.rand(2, 1, 6, 8), 'gt': torch.rand(2, 3, 12, 16),
             'gt_nir': torch.rand(2, 1, 12, 16), 'disp': disp, 'disp_r': disp} for _ in range(ITERS)]


def _train(model, batches, first: int, last: int):
    """BasicSR's train loop body: lr update, feed, step; returns the total loss per iteration."""
    losses = []
    for it in range(first, last + 1):
        model.update_learning_rate(it, warmup_iter=-1)
        model.feed_data(batches[it - 1])
        model.optimize_parameters(it)
        losses.append(sum(float(v) for v in model.get_current_log().values()))
    return losses


def _weights(model):
    return {k: v.detach().clone() for k, v in model.net_g.state_dict().items()}


def test_resumed_run_equals_the_uninterrupted_run(tmp_path):
    batches = _batches()
    for folder in ('models', 'training_states'):
        (tmp_path / folder).mkdir()
    torch.manual_seed(0)
    straight = build_model(_options(tmp_path / 'unused'))
    init = _weights(straight)
    ref_losses = _train(straight, batches, 1, ITERS)

    torch.manual_seed(0)
    first = build_model(_options(tmp_path))
    assert all(torch.equal(init[k], v) for k, v in _weights(first).items())
    losses = _train(first, batches, 1, STOP)
    first.save(0, STOP)  # net_g_3.pth and 3.state, as BasicSR's loop saves them

    opt = _options(tmp_path)
    opt['auto_resume'] = True
    state = load_resume_state(opt)
    assert state['iter'] == STOP and opt['path']['pretrain_network_g'] == str(tmp_path / 'models' / f'net_g_{STOP}.pth')
    torch.manual_seed(123)  # the resumed weights must come from the checkpoint, not from the seed
    resumed = build_model(opt)
    resumed.resume_training(state)
    losses += _train(resumed, batches, STOP + 1, ITERS)

    assert losses == pytest.approx(ref_losses, rel=1e-5)
    final, ref = _weights(resumed), _weights(straight)
    assert max((final[k].float() - ref[k].float()).abs().max().item() for k in ref) < 1e-6
    # the comparison has teeth: the steps after the stop moved the weights, and the lr milestone was crossed
    assert max((final[k].float() - init[k].float()).abs().max().item() for k in ref) > 1e-3
    assert resumed.get_current_learning_rate()[0] == pytest.approx(1e-3)
