"""Tools of the release (``tools/release_weights.py``): the grid measures of the crop figures, the crop choice,
the figure file, and the refusal of country keys that are not test keys."""
import cv2
import numpy as np
import pytest

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.release.figure import crop_box, crop_figure, edge_mask, grid_pattern


def _smooth(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random 8-bit colour image with noise (no periodic content)."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.random((height // 16, width // 16, 3)), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * 200 + 20 + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def test_grid_pattern_finds_a_grid_locked_to_the_lr_pixels_at_edges():
    gt = _smooth(192, 256)
    lr = cv2.resize(gt, (64, 48), interpolation=cv2.INTER_AREA)
    bicubic = cv2.resize(lr, (256, 192), interpolation=cv2.INTER_CUBIC)
    mask = edge_mask(bicubic)
    assert abs(mask.mean() - 0.1) < 0.01
    grid, modulation = grid_pattern(gt, mask, 4)
    assert grid < 0.5 and modulation < 1.25  # detail unrelated to the LR grid (measured: 0.14, 1.19)
    assert grid_pattern(bicubic, mask, 4)[1] > 1.3  # interpolation is sharper near the LR samples (1.38)
    dots = np.zeros(gt.shape[:2])
    dots[1::4, 2::4] = 8  # a dotted grid of 8 grey levels at one phase of the x4 cell
    dotted = np.clip(gt + (dots * mask)[..., None], 0, 255).astype(np.uint8)
    assert 2.5 < grid_pattern(dotted, mask, 4)[0] < 4.5  # measured: 3.8
    shifted = np.clip(gt + (np.roll(dots, 1, axis=1) * mask)[..., None], 0, 255).astype(np.uint8)
    assert grid_pattern(shifted, mask, 4)[0] > 2.5  # at any phase
    with pytest.raises(CSPSRInputError, match='mask is empty'):
        grid_pattern(gt, np.zeros(gt.shape[:2], bool), 4)


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
