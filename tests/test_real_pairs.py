"""Real RGB-NIR pairs (../shared/data/real_rgbnir) through the dataset, the warp and the network."""
import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY
from conftest import SHARED_REAL

from cspsr_arch.archs.warp import warp_to_left

pytestmark = pytest.mark.skipif(not SHARED_REAL.is_dir(),
                                reason=f'real RGB-NIR pairs not found at {SHARED_REAL} (only in the project checkout)')


def _write_split(split, name, scale=4, shift=8, size=96):
    """A crop of a real pair as a stereo split: the NIR shifted by ``shift`` HR pixels is the right view."""
    rgb = cv2.imread(str(SHARED_REAL / f'{name}_rgb.png'), cv2.IMREAD_COLOR)
    nir = cv2.imread(str(SHARED_REAL / f'{name}_nir.png'), cv2.IMREAD_UNCHANGED)
    assert rgb is not None and nir is not None and rgb.shape[:2] == nir.shape[:2]
    y, x = rgb.shape[0] // 2 - size // 2, rgb.shape[1] // 2 - size // 2
    vis, nir_right = rgb[y:y + size, x:x + size], nir[y:y + size, x + shift:x + shift + size]
    streams = {'HR/VIS': vis, 'HR/NIR': nir_right}
    for key, img in (('VIS', vis), ('NIR', nir_right)):
        lr = imresize(img.astype(np.float32) / 255, 1 / scale)
        streams[f'LR_bicubic/X{scale}/{key}'] = np.clip(np.round(lr * 255), 0, 255).astype(np.uint8)
    streams[f'LR_bicubic/X{scale}/DISP_L'] = np.full((size // scale, size // scale), shift * 256 // scale, np.uint16)
    for folder, img in streams.items():
        (split / folder).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(split / folder / f'{name}.png'), img)
    return nir[y:y + size, x:x + size]


@pytest.mark.parametrize('name', ['pittsstereo_001', 'scene_tree'])
def test_real_pair_loads_warps_back_and_runs(tmp_path, name):
    nir_left = _write_split(tmp_path, name)
    opt = {'name': 'real', 'type': 'PairedCrossSpectralDataset', 'phase': 'val', 'scale': 4,
           'dataroot_gt': str(tmp_path / 'HR' / 'VIS'), 'dataroot_gt_nir': str(tmp_path / 'HR' / 'NIR'),
           'dataroot_lq': str(tmp_path / 'LR_bicubic' / 'X4' / 'VIS'),
           'dataroot_lq_nir': str(tmp_path / 'LR_bicubic' / 'X4' / 'NIR'),
           'dataroot_disp': str(tmp_path / 'LR_bicubic' / 'X4' / 'DISP_L'), 'io_backend': {'type': 'disk'}}
    sample = DATASET_REGISTRY.get('PairedCrossSpectralDataset')(opt)[0]
    assert sample['lq'].shape == (3, 24, 24) and sample['gt_nir'].shape == (1, 96, 96)
    # the real NIR, warped back with the known disparity, matches the left-view NIR where it is visible
    back, valid = warp_to_left(sample['gt_nir'][None], torch.full((1, 1, 96, 96), 8.0))
    expected = torch.from_numpy(nir_left.astype(np.float32) / 255)
    assert valid[0, 0, :, 8:].min() == 1
    assert torch.allclose(back[0, 0, :, 8:], expected[:, 8:], atol=1e-5)
    net = ARCH_REGISTRY.get('CSPSR')(num_feat=8, num_dmf=1, upscale=4).eval()
    with torch.no_grad():
        out = net(sample['lq'][None], sample['lq_nir'][None], sample['disp'][None])
    assert out.sr.shape == (1, 3, 96, 96) and torch.isfinite(out.sr).all()
