"""NLSN (Mei et al., CVPR 2021): shapes, paper sizes, LSH and sparse attention by value, reproducibility."""
import io
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from cspsr_arch.archs.nlsa import NonLocalSparseAttention, lsh_buckets, num_buckets, sparse_attention
from cspsr_arch.archs.nlsn_arch import NLSN, PUBLISHED_PARAMS_X4, SIZES
from cspsr_arch.engine.options import check_options, load_options
from cspsr_arch.errors import CSPSRInputError

OPTIONS = Path(__file__).resolve().parents[2] / 'options'
TINY = {'num_feat': 8, 'num_block': 2, 'attn_every': 1, 'chunk_size': 16, 'res_scale': 1.}


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _dense(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Full non-local attention with NLSA's scores: softmax_j <q_i, q_j / |q_j|> over all positions."""
    return torch.softmax(q @ F.normalize(q, dim=-1, eps=5e-5).transpose(-1, -2), dim=-1) @ v


def _brute_force(q: torch.Tensor, v: torch.Tensor, buckets: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """sparse_attention written out query by query: per round, positions stably sorted by bucket, cut into
    chunks; a query's keys are the real positions of its chunk and the chunks before and after it (cyclic)."""
    n, length, _ = q.shape
    k = F.normalize(q, dim=-1, eps=5e-5)
    num_chunks = -(-length // chunk_size)
    out = torch.zeros(n, length, v.shape[-1], dtype=q.dtype)
    for b in range(n):
        outs, lses = [], []
        for r in range(buckets.shape[1]):
            order = sorted(range(length), key=lambda i: (int(buckets[b, r, i]), i))
            chunk = {pos: rank // chunk_size for rank, pos in enumerate(order)}
            o_r, l_r = torch.zeros(length, v.shape[-1], dtype=q.dtype), torch.zeros(length, dtype=q.dtype)
            for i in range(length):
                near = {chunk[i], (chunk[i] - 1) % num_chunks, (chunk[i] + 1) % num_chunks}
                keys = [j for j in range(length) if chunk[j] in near]
                s = k[b, keys] @ q[b, i]
                o_r[i], l_r[i] = torch.softmax(s, 0) @ v[b, keys], torch.logsumexp(s, 0)
            outs.append(o_r)
            lses.append(l_r)
        w = torch.softmax(torch.stack(lses), dim=0)
        out[b] = (torch.stack(outs) * w[..., None]).sum(0)
    return out


def test_registered_and_built_from_options():
    assert ARCH_REGISTRY.get('NLSN') is NLSN
    net = build_network({'type': 'NLSN', 'num_feat': 8, 'num_block': 2, 'upscale': 2})
    assert isinstance(net, NLSN) and len(net.attentions) == 1
    with torch.device('meta'):
        default = NLSN()
    assert (default.num_feat, default.num_block, default.upscale) == SIZES['paper'] + (4, )
    att = default.attentions
    assert len(att) == 5 and all((a.n_hashes, a.chunk_size, a.res_scale) == (4, 144, 0.1) for a in att)
    assert [a.eval_seed for a in att] == [0, 1, 2, 3, 4]  # each block its own rotations
    assert isinstance(default.body[0], NonLocalSparseAttention)  # one before the first residual block


def test_option_files_build_the_paper_network():
    for scale in (4, 2):
        opt = load_options(str(OPTIONS / f'train_NLSN_x{scale}.yml'))
        assert opt['model_type'] == 'SRModel' and opt['scale'] == scale
        opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
        with pytest.raises(CSPSRInputError, match='Data not found'):  # the keys pass; only the data is missing
            check_options(opt)
        with torch.device('meta'):
            net = build_network(dict(opt['network_g']))
        assert net.upscale == scale and (net.num_feat, net.num_block) == SIZES['paper']
        assert _count(net) == {4: 44_156_483, 2: 41_796_163}[scale]


@pytest.mark.parametrize('upscale, height, width', [(2, 8, 12), (4, 8, 12), (4, 13, 19), (2, 13, 19), (4, 3, 5)])
def test_output_shape(upscale, height, width):
    """Odd sizes, and sizes with one chunk or several (chunk 16: 3x5 is below one chunk, 13x19 has 16)."""
    torch.manual_seed(0)
    net = NLSN(**TINY, upscale=upscale)
    for mode in (True, False):
        net.train(mode)
        with torch.no_grad():
            out = net(torch.rand(2, 3, height, width))
        assert out.shape == (2, 3, upscale * height, upscale * width) and torch.isfinite(out).all()


def test_paper_size_parameter_counts():
    """The paper's NLSN at x4: 44,156,483 = EDSR's 43,090,243 + 5 NLSA blocks of 213,248 (3x3 256->64 match
    and 1x1 256->256 assembly convolutions), the published 44.2 M. The CSPSR paper's Table-1 NLSN (1.853 M) is
    this network at 64 features and 20 residual blocks (3 NLSA blocks): 1,853,171. Meta device: no memory."""
    for size, published in PUBLISHED_PARAMS_X4.items():
        with torch.device('meta'):
            net = NLSN(size=size, upscale=4)
        assert abs(_count(net) - published) / published < 0.005, (size, _count(net))
    with torch.device('meta'):
        assert _count(NLSN(size='cspsr_table1')) == 1_853_171
        edsr = build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 256, 'num_block': 32})
        assert _count(NLSN()) - _count(edsr) == 5 * (256 * 64 * 9 + 64 + 256 * 256 + 256)
        assert _count(NLSN(size='cpu')) == 239_699 and _count(NLSN(size='quick')) == 41_175


def test_num_buckets():
    assert [num_buckets(n, 144) for n in (1, 143, 144, 288, 432, 2304, 10 ** 6)] == [1, 1, 2, 2, 4, 16, 128]


def test_lsh_buckets_by_hand():
    """Bucket = argmax([xR, -xR]). Round 0, R = I: e1 -> 0, e2 -> 1, -e1 -> 2, -e2 -> 3; round 1, R swaps the
    axes: e1 -> 1, e2 -> 0, -e1 -> 3, -e2 -> 2. A near-e1 vector falls with e1."""
    x = torch.tensor([[[1., 0.], [0., 1.], [-1., 0.], [0., -1.], [0.9, 0.2]]])
    rot = torch.stack([torch.eye(2), torch.tensor([[0., 1.], [1., 0.]])], dim=1)  # (C, rounds, n_buckets / 2)
    want = torch.tensor([[[0, 1, 2, 3, 0], [1, 0, 3, 2, 1]]])
    assert torch.equal(lsh_buckets(x, 2, 4, rot), want)
    both = lsh_buckets(torch.cat([x, -x]), 2, 4, torch.stack([rot, rot]))  # one rotation set per sample
    assert torch.equal(both, torch.cat([want, (want + 2) % 4]))
    assert torch.equal(lsh_buckets(x, 3, 1), torch.zeros(1, 3, 5, dtype=torch.long))  # one bucket, no hashing
    with pytest.raises(ValueError):
        lsh_buckets(x, 2, 3, rot)


@pytest.mark.parametrize('length', [13, 16])
def test_one_bucket_one_chunk_is_dense_attention(length):
    """All in one bucket and one chunk of 16: every query sees every key once (padding 3 for 13 masked)."""
    torch.manual_seed(0)
    q, v = torch.randn(2, length, 4), torch.randn(2, length, 6)
    buckets = torch.zeros(2, 3, length, dtype=torch.long)
    out = sparse_attention(q, v, buckets, chunk_size=16)
    assert torch.allclose(out, _dense(q, v), atol=1e-5)


def test_sparse_attention_equals_the_brute_force_definition():
    """5 chunks of 5 over 23 positions (padding 2), 2 rounds, random buckets: chunks, neighbours, padding,
    the stable sort and the mixing of the rounds against a query-by-query loop."""
    torch.manual_seed(1)
    q, v = torch.randn(2, 23, 3, requires_grad=True), torch.randn(2, 23, 4, requires_grad=True)
    buckets = torch.randint(0, 4, (2, 2, 23))
    out = sparse_attention(q, v, buckets, chunk_size=5)
    want = _brute_force(q, v, buckets, 5)
    assert torch.allclose(out, want, atol=1e-5)
    w = torch.randn_like(out)  # the gradients too (the round weights' logsumexp included)
    grads = torch.autograd.grad((out * w).sum(), (q, v))
    for got, ref in zip(grads, torch.autograd.grad((want * w).sum(), (q, v))):
        assert torch.allclose(got, ref, atol=1e-5)
    q, v = q.detach(), v.detach()
    # two chunks: the other chunk counted once
    buckets = torch.randint(0, 2, (1, 2, 9))
    assert torch.allclose(sparse_attention(q[:1, :9], v[:1, :9], buckets, 5),
                          _brute_force(q[:1, :9], v[:1, :9], buckets, 5), atol=1e-5)


def test_different_buckets_do_not_attend_to_each_other():
    """4 buckets of exactly one chunk each (positions interleaved): bucket 0 sees buckets 3, 0, 1 (neighbouring
    chunks) but not bucket 2, whose values then do not change bucket 0's output."""
    torch.manual_seed(2)
    length = 24
    buckets = (torch.arange(length) % 4).view(1, 1, length)
    q, v = torch.randn(1, length, 4), torch.randn(1, length, 3)
    out = sparse_attention(q, v, buckets, chunk_size=6)
    v2 = v.clone()
    v2[:, 2::4] += 10.
    out2 = sparse_attention(q, v2, buckets, chunk_size=6)
    assert torch.allclose(out[:, 0::4], out2[:, 0::4], atol=1e-6)
    for b in (1, 2, 3):
        assert (out[:, b::4] - out2[:, b::4]).abs().min() > 1e-3
    # by value: a bucket-0 query attends to buckets 3, 0 and 1 only, with NLSA's scores
    near = (buckets[0, 0] != 2).nonzero().squeeze(1)
    k = F.normalize(q[0, near], dim=-1, eps=5e-5)
    want = torch.softmax(q[0, 0::4] @ k.T, dim=-1) @ v[0, near]
    assert torch.allclose(out[0, 0::4], want, atol=1e-5)


def test_nlsa_block_below_one_chunk_is_dense_non_local_attention():
    """Fewer pixels than a chunk (5x7 < 144): one bucket, x + res_scale * dense attention of the embeddings."""
    torch.manual_seed(3)
    block = NonLocalSparseAttention(8, res_scale=0.5).train()
    x = torch.randn(2, 8, 5, 7)
    q = block.conv_match(x).flatten(2).transpose(1, 2)
    v = block.conv_assembly(x).flatten(2).transpose(1, 2)
    want = x + 0.5 * _dense(q, v).transpose(1, 2).reshape(x.shape)
    assert torch.allclose(block(x), want, atol=1e-5)


def test_eval_is_reproducible_and_training_is_random():
    torch.manual_seed(4)
    net = NLSN(**TINY, upscale=2)
    x = torch.rand(1, 3, 12, 12)  # 144 pixels: 8 buckets of chunk 16
    with torch.no_grad():
        net.eval()
        first = net(x)
        torch.manual_seed(123)  # the global random state does not matter in eval
        assert torch.equal(net(x), first)
        net.train()
        assert not torch.allclose(net(x), net(x))  # fresh rotations at every training forward
        for a in net.attentions:
            a.eval_seed = None  # the release's behaviour: fresh rotations in eval too
        net.eval()
        assert not torch.allclose(net(x), net(x))


def test_checkpoint_round_trip():
    torch.manual_seed(5)
    net = NLSN(**TINY, upscale=4).eval()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(6)
    other = NLSN(**TINY, upscale=4).eval()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert not torch.allclose(other(x), net(x))
        other.load_state_dict(torch.load(buf), strict=True)
        assert torch.equal(other(x), net(x))


def test_gradients_reach_every_parameter():
    torch.manual_seed(7)
    net = NLSN(**TINY, upscale=2).train()
    net(torch.rand(2, 3, 10, 9)).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_global_skip_and_mean_shift():
    """With a zero convolution after the trunk, the trunk adds nothing and the global skip alone carries the head
    features: SR = conv_last(upsample(conv_first((x - mean) * r))) / r + mean."""
    torch.manual_seed(8)
    net = NLSN(**TINY, upscale=2, img_range=2.).eval()
    x = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        net.conv_after_body.weight.zero_()
        net.conv_after_body.bias.zero_()
        mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
        want = net.conv_last(net.upsample(net.conv_first((x - mean) * 2.))) / 2. + mean
        assert torch.allclose(net(x), want, atol=1e-6)
