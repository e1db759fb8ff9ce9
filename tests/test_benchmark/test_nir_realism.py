"""NIR statistics (cspsr_arch.benchmark.nir_realism) on images with known answers."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cspsr_arch.benchmark import nir_realism

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'nir_statistics.py'


def _stripes(h: int, w: int, vertical: bool) -> np.ndarray:
    coord = np.arange(w if vertical else h, dtype=np.float32)
    wave = 0.5 + 0.3 * np.sin(coord * 2 * np.pi / 5)
    return np.broadcast_to(wave[None, :] if vertical else wave[:, None], (h, w)).astype(np.float32)


def test_a_nir_that_is_an_affine_map_of_the_luminance_adds_nothing():
    rng = np.random.default_rng(0)
    rgb = cv2.GaussianBlur(rng.random((40, 48, 3)).astype(np.float32), (0, 0), 1.5)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    stats = nir_realism.pair_statistics(rgb, 0.5 * y + 0.1)
    assert stats['corr_intensity'] == pytest.approx(1.0, abs=1e-5)
    assert stats['corr_gradient'] == pytest.approx(1.0, abs=1e-5)
    assert stats['detail_ratio'] == pytest.approx(0.5, rel=1e-4)
    assert stats['unique_detail'] == pytest.approx(0.0, abs=1e-5)
    assert stats['nir_mean'] == pytest.approx(float((0.5 * y + 0.1).mean()), rel=1e-6)


def test_textures_the_vis_image_lacks_are_unique_detail():
    grey = _stripes(40, 40, vertical=False)  # horizontal stripes in the VIS, vertical ones in the NIR
    stats = nir_realism.pair_statistics(np.stack([grey] * 3, -1), _stripes(40, 40, vertical=True))
    assert stats['unique_detail'] == pytest.approx(1.0, abs=1e-3)
    assert abs(stats['corr_intensity']) < 1e-3


def test_vegetation_and_sky_ratios_by_hand():
    rgb = np.zeros((20, 20, 3), np.float32)
    rgb[:10] = (0.2, 0.6, 0.2)  # green: vegetation
    rgb[10:] = (0.3, 0.3, 0.3)  # grey: neither
    nir = np.where(np.arange(20)[:, None] < 10, 0.9, 0.2).astype(np.float32) * np.ones((20, 20), np.float32)
    stats = nir_realism.pair_statistics(rgb, nir)
    assert stats['veg_ratio'] == pytest.approx(0.9 / (0.299 * 0.2 + 0.587 * 0.6 + 0.114 * 0.2), rel=1e-5)
    assert np.isnan(stats['sky_ratio'])
    assert nir_realism.summarise([stats, {**stats, 'veg_ratio': 1.0}])['veg_ratio'] == pytest.approx(
        (stats['veg_ratio'] + 1.0) / 2)
    assert np.isnan(nir_realism.summarise([stats])['sky_ratio'])


def test_the_tool_reads_a_folder_and_names_bad_pairs(tmp_path, capsys):
    rng = np.random.default_rng(1)
    vis = (rng.random((24, 30, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'a_rgb.png'), vis)
    cv2.imwrite(str(tmp_path / 'a_nir.png'), cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY))
    done = subprocess.run([sys.executable, str(TOOL), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    row = [line for line in done.stdout.splitlines() if line.startswith(f'| {tmp_path.name} |')]
    assert len(row) == 1 and row[0].split('|')[2].strip() == '1'
    cv2.imwrite(str(tmp_path / 'a_nir.png'), np.zeros((20, 30), np.uint8))
    assert nir_realism.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert 'a_nir.png is 30x20' in err and 'registered pairs of one size' in err
    (tmp_path / 'a_nir.png').write_bytes(b'not an image')
    assert nir_realism.main([str(tmp_path)]) == 2
    assert 'a_nir.png could not be read' in capsys.readouterr().err
