"""SMSR's sparse computation (Wang et al., CVPR 2021): the sparse convolution and the sparse mask block against
the dense computation multiplied by the masks, and their known answers for all-on and all-off masks."""
import pytest
import torch
import torch.nn.functional as F

from cspsr_arch.archs.smsr_blocks import SparseMaskBlock, active_sites, sparse_conv


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny networks on one thread (see tests/test_archs/test_smsr.py), the previous setting restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _split_reference(x, split_in, split_out, mask, weight):
    """The masked dense computation of one layer: inputs split by ``split_in`` (sparse ones zero off the mask),
    ``conv(dense) * (dense_out + sparse_out * mask) + conv(sparse) * mask``."""
    s_in = split_in.double().view(1, -1, 1, 1)
    s_out = split_out.double().view(1, -1, 1, 1)
    pad = weight.shape[-1] // 2
    x = x * (1 - s_in) + x * s_in * mask
    dense = F.conv2d(x * (1 - s_in), weight, padding=pad)
    sparse = F.conv2d(x * s_in, weight, padding=pad)
    return dense * (1 - s_out + s_out * mask) + sparse * mask


def _split(x, split, sites):
    """A full map (B, C, H, W) as the dense (B, Cd, H, W) and sparse (N, Cs) parts of sparse_conv."""
    return x[:, ~split], x[sites.batch, :, sites.row, sites.col][:, split]


def _assemble(dense, sparse, split_out, sites):
    out = dense.new_zeros(dense.shape[0], split_out.numel(), *dense.shape[2:])
    out[:, ~split_out] = dense
    sites_values = out[sites.batch, :, sites.row, sites.col]
    sites_values[:, split_out] = sparse
    out[sites.batch, :, sites.row, sites.col] = sites_values
    return out


@pytest.mark.parametrize('kernel', [1, 3])
@pytest.mark.parametrize('density', [0.0, 0.3, 1.0])
def test_sparse_conv_equals_the_masked_dense_conv(kernel, density):
    gen = torch.Generator().manual_seed(kernel + int(10 * density))
    x = torch.randn(2, 6, 7, 9, dtype=torch.float64, generator=gen)
    weight = torch.randn(5, 6, kernel, kernel, dtype=torch.float64, generator=gen)
    mask = (torch.rand(2, 1, 7, 9, generator=gen) < density).double()
    sites = active_sites(mask)
    assert sites.count == int(mask.sum())
    for split_in, split_out in [(torch.tensor([0, 1, 0, 1, 1, 0]), torch.tensor([1, 0, 0, 1, 1])),
                                (torch.zeros(6), torch.zeros(5)), (torch.ones(6), torch.ones(5)),
                                (torch.ones(6), torch.zeros(5)), (torch.zeros(6), torch.ones(5))]:
        split_in, split_out = split_in.bool(), split_out.bool()
        dense, sparse = sparse_conv(*_split(x, split_in, sites), weight, split_in, split_out, sites)
        assert dense.shape == (2, int((~split_out).sum()), 7, 9) and sparse.shape == (sites.count, int(split_out.sum()))
        got = _assemble(dense, sparse, split_out, sites)
        want = _split_reference(x, split_in, split_out, mask, weight)
        assert torch.allclose(got, want, atol=1e-12), (split_in, split_out)
        if density == 1.0:  # every position on: the plain convolution, whatever the channel split
            assert torch.allclose(got, F.conv2d(x, weight, padding=kernel // 2), atol=1e-12)
        if density == 0.0 and split_out.all():  # nothing on and every output sparse: nothing computed
            assert sparse.numel() == 0 and not got.any()


def _block(seed=0):
    torch.manual_seed(seed)
    return SparseMaskBlock(6, num_layer=3).double()


def _plain_block(block, x, keep):
    """The block as a plain network whose layer outputs are multiplied by ``keep[i]`` (B or 1, C, H, W)."""
    feats, feat = [], x
    for conv, k in zip(block.convs, keep):
        feat = F.relu(conv(feat)) * k
        feats.append(feat)
    return block.collect(torch.cat(feats, 1))


@pytest.mark.parametrize('path', ['forward', 'forward_sparse'])
def test_block_known_answers_for_all_on_and_all_off_masks(path):
    """Spatial mask all on: the plain dense block, for any channel masks. All off: sparse channels are never
    computed, dense channels see only dense inputs; every channel sparse and all off: the 1x1 conv's bias."""
    block = _block()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    ch = (torch.rand(3, 6, generator=torch.Generator().manual_seed(3)) < 0.5).double()
    assert 0 < ch.mean() < 1
    on, off = torch.ones(2, 1, 5, 7, dtype=torch.float64), torch.zeros(2, 1, 5, 7, dtype=torch.float64)
    run = getattr(block, path)
    with torch.no_grad():
        assert torch.allclose(run(x, on, ch), _plain_block(block, x, [1, 1, 1]), atol=1e-12)
        # dense inputs only (sparse input channels are zero everywhere): mask each layer's output by its dense
        # channels, which is what the next layer then reads
        keep = [(1 - c).view(1, -1, 1, 1) for c in ch]
        assert torch.allclose(run(x, off, ch), _plain_block(block, x, keep), atol=1e-12)
        bias = block.collect.bias.view(1, -1, 1, 1).expand(2, -1, 5, 7)
        assert torch.allclose(run(x, off, torch.ones_like(ch)), bias, atol=1e-12)


@pytest.mark.parametrize('density', [0.2, 0.6])
def test_sparse_block_equals_the_dense_masked_block(density):
    block = _block(1)
    gen = torch.Generator().manual_seed(int(10 * density))
    x = torch.randn(2, 6, 9, 13, dtype=torch.float64, generator=gen)
    spa = (torch.rand(2, 1, 9, 13, generator=gen) < density).double()
    ch = (torch.rand(3, 6, generator=gen) < 0.5).double()
    ch[1] = 1  # a layer of sparse channels only, then one of dense channels only: no dense or no sparse inputs
    ch[2] = 0
    with torch.no_grad():
        dense = block(x, spa, ch)
        sparse = block.forward_sparse(x, spa, ch)
    assert torch.allclose(dense, sparse, atol=1e-12)
    # the masks matter: a different spatial mask changes the result
    with torch.no_grad():
        assert not torch.allclose(block(x, 1 - spa, ch), dense, atol=1e-3)
