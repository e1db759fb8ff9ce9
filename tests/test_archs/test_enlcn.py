"""ENLCN (Xia et al., AAAI 2022) and ENLCN w/ NIR: shapes, paper size, the attention by value, checkpoints, the NIR."""
import math
from pathlib import Path

import pytest
import torch
from basicsr.archs.edsr_arch import EDSR
from basicsr.utils.registry import ARCH_REGISTRY

from cspsr_arch.archs.enlca import (ENLCA, contrastive_loss, contrastive_terms, linear_attention,
                                    orthogonal_gaussian_features, positive_features)
from cspsr_arch.archs.enlcn_arch import ENLCN, ENLCNNIR

TINY = {'num_feat': 8, 'num_block': 2, 'attn_every': 1, 'reduction': 2, 'num_features': 16}


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize('upscale, height, width', [(2, 8, 10), (2, 13, 19), (4, 13, 19), (3, 5, 7)])
def test_vis_only_output_shape(upscale, height, width):
    net = ENLCN(**TINY, upscale=upscale).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, height, width))
    assert out.shape == (2, 3, upscale * height, upscale * width)


@pytest.mark.parametrize('upscale, nir_scale, height, width', [(2, 1, 8, 10), (2, 1, 13, 19), (4, 1, 13, 19),
                                                               (4, 4, 13, 19), (4, 2, 5, 7)])
def test_nir_output_shape_and_fields(upscale, nir_scale, height, width):
    net = ENLCNNIR(**TINY, upscale=upscale, nir_scale=nir_scale).eval()
    lq, nir = torch.rand(2, 3, height, width), torch.rand(2, 1, nir_scale * height, nir_scale * width)
    with torch.no_grad():
        out = net(lq, nir)
    assert out.sr.shape == (2, 3, upscale * height, upscale * width)
    assert out.nir_sr is None and out.disp_r is None
    assert out.disp_l.shape == (2, 1, height, width) and not out.disp_l.any()
    assert (net.cvm, net.branches, net.upscale, net.nir_scale, net.row_context) == ('none', 'single', upscale,
                                                                                    nir_scale, True)
    assert net.net.conv_first.in_channels == 3 + nir_scale**2


def test_paper_size_matches_the_published_count():
    """The CSPSR paper's footer lists ENLCN at 1.536 M: EDSR's baseline (16 blocks, 64 features) with 3 ENLCA modules
    (before block 1, after blocks 8 and 16) of 1x1 convolutions 64->16, 64->16, 64->64: 1,517,571 + 3 x 6,240. (The
    ENLCN paper's own network, 32 blocks of 256 features, is 43.6 M at x4.) ENLCN w/ NIR adds one input channel to the
    first convolution: 64 x 9 weights."""
    net = ENLCN()
    edsr = _count(EDSR(3, 3, num_feat=64, num_block=16, upscale=4))
    attention = [m for m in net.body if isinstance(m, ENLCA)]
    assert len(attention) == 3 and [_count(m) for m in attention] == [2 * (64 * 16 + 16) + 64 * 64 + 64] * 3
    assert (edsr, _count(net)) == (1517571, 1536291)
    assert abs(_count(net) - 1.536e6) / 1.536e6 < 0.001
    assert _count(ENLCNNIR()) == 1536291 + 64 * 9
    assert len([m for m in ENLCN(num_feat=8, num_block=32).body if isinstance(m, ENLCA)]) == 5  # the ENLCN paper's 32


def test_random_features_are_gaussian_rows_orthogonal_in_blocks():
    w = orthogonal_gaussian_features(64, 16, torch.Generator().manual_seed(0))
    unit = w[:16] / w[:16].norm(dim=1, keepdim=True)
    assert torch.allclose(unit @ unit.t(), torch.eye(16), atol=1e-5)
    big = orthogonal_gaussian_features(4096, 4, torch.Generator().manual_seed(1))
    assert abs(big.var().item() - 1) < 0.05 and abs(big.mean().item()) < 0.03  # rows ~ N(0, I)


@pytest.mark.parametrize('norm', [0.3, 0.6])
def test_positive_random_features_estimate_exp_of_the_dot_product(norm):
    """E[phi(q) . phi(k)] = exp(q . k), one feature's product having the variance exp(2 q.k) (exp(|q + k|^2) - 1)
    (Gaussian rows; orthogonal blocks only lower it): with 2^16 features the estimate is within 4 standard
    deviations of its mean, and the spread grows with the norm (the paper's reason for the contrastive loss)."""
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 4, generator=gen, dtype=torch.float64), torch.randn(5, 4, generator=gen, dtype=torch.float64)
    q, k = norm * q / q.norm(dim=1, keepdim=True), norm * k / k.norm(dim=1, keepdim=True)
    m = 2**16
    w = orthogonal_gaussian_features(m, 4, gen).double()
    estimate = positive_features(q, w, floor=0.0) @ positive_features(k, w, floor=0.0).t()
    exact = torch.exp(q @ k.t())
    rel_std = torch.sqrt((torch.exp((q.unsqueeze(1) + k.unsqueeze(0)).pow(2).sum(-1)) - 1) / m)
    assert ((estimate - exact).abs() / exact <= 4 * rel_std).all()
    floored = positive_features(q, w) @ positive_features(k, w).t()  # the 1e-4 floor: a bias of ~1e-4
    assert ((floored - estimate) / exact).abs().max() < 1e-3


@pytest.mark.parametrize('amplification, tol', [(0.5, 0.005), (1.0, 0.02)])
def test_enlca_attention_approaches_exact_softmax_attention(amplification, tol):
    """With many random features the module's kernel attention is the exact non-local attention
    softmax_j(k^2 cos(q_i, k_j)) v_j on its amplified unit embeddings (Sparse Aggregation)."""
    torch.manual_seed(0)
    module = ENLCA(8, reduction=2, num_features=2**15, amplification=amplification).eval()
    x = torch.randn(1, 8, 3, 5)
    with torch.no_grad():
        query, key, value = module.embed(x)
        for unit in (query, key):  # both amplified: k^2 cos(q, k)
            assert torch.allclose(unit.norm(dim=1), torch.full((1, 3, 5), amplification), atol=1e-5)
        weights = torch.softmax(query.flatten(2).transpose(1, 2) @ key.flatten(2), dim=-1)  # (1, 15, 15)
        exact = (weights @ value.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(1, 8, 3, 5)
        approx = module.attend(query, key, value)
        assert (approx - exact).abs().max() < tol * value.abs().max()
        assert torch.allclose(module(x), x + approx)


def test_attention_of_a_constant_value_is_that_constant():
    """The weights are positive and sum to one: a constant value comes back, here and through the module."""
    gen = torch.Generator().manual_seed(0)
    q_feat, k_feat = torch.rand(2, 7, 16, generator=gen), torch.rand(2, 7, 16, generator=gen)
    value = torch.tensor([3.0, -1.5]).expand(2, 7, 2)
    assert torch.allclose(linear_attention(q_feat, k_feat, value), value, atol=1e-6)
    module = ENLCA(8, reduction=2, num_features=16, res_scale=0.5).eval()
    with torch.no_grad():
        module.conv_assembly.weight.zero_()
        module.conv_assembly.bias.copy_(torch.arange(8.0))
        x = torch.randn(1, 8, 5, 7)
        assert torch.allclose(module(x), x + 0.5 * torch.arange(8.0).view(1, 8, 1, 1), atol=1e-5)


def test_contrastive_terms_split_a_hand_made_score_vector():
    scores = torch.tensor([1.0, 9.0, 3.0, 7.0, 5.0, 8.0, 2.0])  # sorted: 9 8 7 5 3 2 1
    pos, neg = contrastive_terms(scores, num_pos=2, neg_from=4)
    assert (pos.item(), neg.item()) == ((9 + 8) / 2, (3 + 2 + 1) / 3)
    with pytest.raises(ValueError, match='neg_from'):
        contrastive_terms(scores, num_pos=2, neg_from=7)


def test_contrastive_loss_by_hand():
    """Keys all alike: positives = negatives, loss = margin 1 (no separation). One key of each query's own
    direction far above the rest (amplified): log(pos / neg) > 1, loss 0."""
    same = torch.ones(1, 2, 8, 8)
    assert torch.allclose(contrastive_loss(same, same), torch.tensor(1.0), atol=1e-5)
    assert contrastive_loss(torch.ones(1, 2, 5, 5), torch.ones(1, 2, 5, 5)) == 0  # 25 positions: no negatives
    d = 64
    query = (3.0 * torch.eye(d)).view(1, d, 8, 8)  # position i: 3 e_i, so q_i . k_j = 9 [i == j]
    pos, neg = contrastive_terms(torch.exp(query.flatten(2).transpose(1, 2) @ query.flatten(2)), 5, 50)
    assert torch.allclose(pos, torch.full((1, d), (math.exp(9) + 4) / 5)) and torch.allclose(neg, torch.ones(1, d))
    assert contrastive_loss(query, query) == 0


def test_contrastive_loss_only_when_asked_and_training():
    torch.manual_seed(0)
    net = ENLCN(**TINY, upscale=2, contrastive=True).train()
    net(torch.rand(2, 3, 9, 11)).mean().backward()
    loss = net.contrastive_loss()
    assert loss is not None and loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    assert ENLCN(**TINY, upscale=2).train()(torch.rand(1, 3, 9, 11)) is not None
    plain = ENLCN(**TINY, upscale=2).train()
    plain(torch.rand(1, 3, 9, 11))
    assert plain.contrastive_loss() is None
    evaluated = ENLCN(**TINY, upscale=2, contrastive=True).eval()
    with torch.no_grad():
        evaluated(torch.rand(1, 3, 9, 11))
    assert evaluated.contrastive_loss() is None


def test_edsr_conventions_zero_last_conv_gives_the_mean():
    net = ENLCN(**TINY, upscale=2).eval()
    with torch.no_grad():
        net.conv_last.weight.zero_()
        net.conv_last.bias.zero_()
        out = net(torch.rand(1, 3, 5, 6))
    assert torch.allclose(out, torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1).expand_as(out))


def test_eval_deterministic_and_strict_checkpoint_round_trip():
    torch.manual_seed(0)
    net = ENLCN(**TINY, upscale=2).eval()
    x = torch.rand(1, 3, 13, 19)
    with torch.no_grad():
        out = net(x)
        assert torch.equal(out, net(x))
    state = net.state_dict()
    assert 'body.0.projection' in state  # the random features travel with the weights
    torch.manual_seed(1)
    other = ENLCN(**TINY, upscale=2).eval()
    assert not torch.equal(other.body[0].projection, net.body[0].projection)
    other.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert torch.equal(other(x), out)
    nir_net = ENLCNNIR(**TINY, upscale=2).eval()
    again = ENLCNNIR(**TINY, upscale=2).eval()
    again.load_state_dict(nir_net.state_dict(), strict=True)
    lq, nir = torch.rand(1, 3, 7, 9), torch.rand(1, 1, 7, 9)
    with torch.no_grad():
        assert torch.equal(again(lq, nir).sr, nir_net(lq, nir).sr)


@pytest.mark.parametrize('name, cls', [('ENLCN', ENLCN), ('ENLCNNIR', ENLCNNIR)])
def test_registered_and_built_from_an_option_dict(name, cls):
    from basicsr.archs import build_network
    assert ARCH_REGISTRY.get(name) is cls
    net = build_network({'type': name, **TINY, 'upscale': 2})
    assert isinstance(net, cls) and net.upscale == 2


def test_which_arch_reads_the_nir():
    from cspsr_arch.infer.vis_only import reads_nir
    assert reads_nir('ENLCNNIR') and not reads_nir('ENLCN')


def test_the_nir_changes_the_output():
    torch.manual_seed(0)
    net = ENLCNNIR(**TINY, upscale=2).eval()
    lq = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        a, b = net(lq, torch.rand(1, 1, 9, 11)).sr, net(lq, torch.rand(1, 1, 9, 11)).sr
    assert (a - b).abs().max() > 1e-4


def test_wrong_nir_size_names_both_shapes():
    net = ENLCNNIR(**TINY, upscale=2)
    with pytest.raises(ValueError, match=r'\(1, 3, 9, 11\).*\(1, 1, 9, 10\)'):
        net(torch.rand(1, 3, 9, 11), torch.rand(1, 1, 9, 10))
    with pytest.raises(ValueError, match='nir_scale'):
        ENLCNNIR(**TINY, upscale=4, nir_scale=3)
    with pytest.raises(ValueError, match='rgb_mean'):
        ENLCN(num_in_ch=4)


@pytest.mark.parametrize('file, model_type', [('train_ENLCN_x4.yml', 'SRModel'),
                                              ('train_ENLCN_NIR_x4.yml', 'CSPSRModel')])
def test_option_files_train_one_step(tmp_path, file, model_type):
    """Built from the shipped option file (tiny sizes merged over it): one training step of its model, then a test."""
    from basicsr.models import build_model
    from basicsr.utils.registry import DATASET_REGISTRY
    from toy_data import make_toy_split

    from cspsr_arch.engine.options import load_options
    options = load_options(str(Path(__file__).resolve().parents[2] / 'options' / file))
    assert options['model_type'] == model_type and options['scale'] == options['network_g']['upscale'] == 4
    make_toy_split(tmp_path, keys=('a', ), size=64, scales=(4, ))
    data = DATASET_REGISTRY.get('PairedCrossSpectralDataset')(
        {'name': 'toy', 'phase': 'train', 'scale': 4, 'dataroot': str(tmp_path), 'gt_size': 32})[0]
    batch = {k: v[None] for k, v in data.items() if torch.is_tensor(v)}
    network = {**options['network_g'], **TINY}
    model = build_model({'name': 'toy', 'model_type': model_type, 'scale': 4, 'num_gpu': 0, 'is_train': True,
                         'dist': False, 'rank': 0, 'world_size': 1, 'network_g': network, 'path': {}, 'datasets': {},
                         'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                                   'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
                                   'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0}}})
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert torch.isfinite(torch.as_tensor(model.log_dict['l_pix']))
    model.test()
    assert model.output.shape == (1, 3, 32, 32)
