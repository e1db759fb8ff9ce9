"""Tools of the release (``tools/release_weights.py``): the grid measure of the crop figures, the crop choice,
the figure file, and the refusal of country keys that are not test keys."""
import cv2
import numpy as np
import pytest

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.release.figure import crop_box, crop_figure, lattice_peak_ratio


def _smooth(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random 8-bit colour image with noise (no periodic content)."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.random((height // 16, width // 16, 3)), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * 200 + 20 + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def test_lattice_peak_ratio_finds_a_grid_of_the_scale_period_only():
    img = _smooth(192, 256)
    assert lattice_peak_ratio(img, 4) < 2  # photographs and noise: about 1
    grid = np.zeros(img.shape[:2])
    grid[::4, ::4] = 12  # a dotted grid every 4 pixels, 12 grey levels
    dotted = np.clip(img + grid[..., None], 0, 255).astype(np.uint8)
    assert lattice_peak_ratio(dotted, 4) > 100  # measured: 272
    noise = np.random.default_rng(3).normal(128, 20, (512, 512)).clip(0, 255).astype(np.uint8)
    assert 0.8 < lattice_peak_ratio(noise, 4) < 1.4  # white noise: the lattice bins are like their neighbours
    stripes = np.zeros(img.shape[:2])
    stripes[:, ::3] = 12  # period 3: not the x4 lattice
    assert lattice_peak_ratio(np.clip(img + stripes[..., None], 0, 255).astype(np.uint8), 4) < 2
    with pytest.raises(CSPSRInputError, match='too small'):
        lattice_peak_ratio(img[:10, :10], 4)


def test_crop_box_picks_the_strong_edges_an_lr_image_holds():
    img = np.full((128, 192, 3), 128, np.uint8)
    img[64:, 120:] = 250  # one strong corner edge
    rng = np.random.default_rng(1)
    img[:40, :60] = rng.integers(100, 156, (40, 60, 3))  # fine texture that x4 LR cannot hold
    top, left = crop_box(img, 32, 4)
    assert top % 4 == 0 and left % 4 == 0
    assert top < 64 < top + 32 and left < 120 < left + 32


def test_crop_figure_file(tmp_path):
    gt = _smooth(96, 128, seed=2)
    images = {'bicubic': cv2.GaussianBlur(gt, (5, 5), 2), 'model': gt}
    info = crop_figure(images, tmp_path / 'f.png', 4, size=32, zoom=2, gt=gt)
    fig = cv2.imread(str(tmp_path / 'f.png'))
    assert fig.shape[1] == 3 * (32 * 2 + 4) and (tmp_path / 'f.png').stat().st_size < 300e3
    assert info['psnr']['model'] == float('inf') and info['psnr']['bicubic'] < 40
    assert set(info['grid']) == {'bicubic', 'model', 'ground truth'}
    with pytest.raises(CSPSRInputError, match='one size'):
        crop_figure({'a': gt, 'b': gt[:64]}, tmp_path / 'g.png', 4)


def test_country_inputs_only_for_test_keys(tmp_path):
    from cspsr_arch.release.country import country_test_split
    with pytest.raises(CSPSRInputError, match="keys \\['0001'\\] are not test keys of the cpu preset"):
        country_test_split(tmp_path, ['0001', '0046'], tmp_path / 'out')
