"""Registration of VIS/NIR pairs in data preparation (:mod:`cspsr_arch.prep.registration`): a known smooth warp
is undone, the VIS is never touched, a pair that cannot be registered is reported and left out."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_COUNTRY
from registration_pairs import H, W, moved as _moved, scene as _scene, truth as _truth

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep import commands, registration, semisynthetic



def _inverse(truth: np.ndarray) -> np.ndarray:
    """The field f with ``moved(p + f(p)) = nir(p)``: ``f(p) = truth(p + f(p))`` (fixed point)."""
    h, w = truth.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    field = truth.copy()
    for _ in range(20):
        field = cv2.remap(truth, xs + field[..., 0], ys + field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return field


def test_a_known_smooth_local_warp_is_undone_to_sub_pixel_accuracy():
    vis, nir = _scene()
    truth = _truth(H, W)
    moved = _moved(nir, truth)
    before = registration.measure_misalignment(vis, moved)['misalignment']
    registered, field = registration.register_nir(vis, moved)
    inner = (slice(32, -32), slice(32, -32))
    error = np.hypot(*(field - _inverse(truth))[inner].transpose(2, 0, 1))
    assert error.mean() < 0.35 and np.percentile(error, 95) < 0.8, (error.mean(), np.percentile(error, 95))
    residual = np.abs(registered.astype(float) - nir)[inner].mean()
    assert residual < 0.25 * np.abs(moved.astype(float) - nir)[inner].mean()
    assert before > 3 and registration.measure_misalignment(vis, registered)['misalignment'] < 0.6


def test_field_parts_by_hand():
    # a NaN tile takes its neighbours' median, an outlier (5 px from its neighbours) too
    grid = np.zeros((3, 4, 2), np.float32)
    grid[..., 0] = [[1, 1, 2, 2], [1, 9, 2, np.nan], [1, 1, 2, 2]]
    cleaned = registration.clean_shifts(grid)
    assert cleaned[1, 1, 0] == pytest.approx(1.0) and cleaned[1, 3, 0] == pytest.approx(2.0)
    assert np.array_equal(cleaned[0], grid[0]) and np.isnan(grid[1, 3, 0])  # the rest kept, the input untouched
    assert not registration.clean_shifts(np.full((2, 2, 2), np.nan, np.float32)).any()
    # bilinear between tile centres, constant beyond the outer ones
    ramp = np.zeros((2, 3, 2), np.float32)
    ramp[..., 0] = [[0, 4, 8], [0, 4, 8]]
    ramp[..., 1] = [[1, 1, 1], [3, 3, 3]]
    field = registration.dense_field(np.array([10., 30.]), np.array([5., 25., 45.]), ramp, (40, 60), smooth=0)
    assert field[20, 15, 0] == pytest.approx(2.0) and field[20, 40, 0] == pytest.approx(7.0)
    assert field[0, 0, 0] == 0 and field[20, 59, 0] == pytest.approx(8.0)
    assert field[20, 15, 1] == pytest.approx(2.0) and field[0, 30, 1] == 1 and field[39, 30, 1] == 3
    # two constant displacements compose to their sum; a field is read where the increment has moved to
    a, b = np.full((8, 9, 2), (1.5, -0.5), np.float32), np.full((8, 9, 2), (0.25, 2.0), np.float32)
    assert np.allclose(registration.compose(a, b), (1.75, 1.5))
    ramp = np.zeros((8, 30, 2), np.float32)
    ramp[..., 0] = 0.1 * np.arange(30)
    composed = registration.compose(ramp, np.full((8, 30, 2), (2.0, 0.0), np.float32))
    assert composed[4, 10, 0] == pytest.approx(2.0 + 0.1 * 12) and composed[4, 10, 1] == 0


def test_check_pair_policies_and_the_vis_untouched():
    vis, nir = _scene(1)
    moved = _moved(nir, _truth(H, W))
    vis_before, moved_before = vis.copy(), moved.copy()
    for policy, action, same in (('keep', 'kept', True), ('skip', 'skipped', True), ('error', 'rejected', True),
                                 ('register', 'registered', False)):
        used, checked = registration.check_pair(vis, moved, policy, 1.5)
        assert checked.misaligned and checked.action == action and (used is moved) == same
        assert np.array_equal(vis, vis_before) and np.array_equal(moved, moved_before)
    assert checked.after['misalignment'] < 1.5 and checked.check['misalignment'] < 1.5 and checked.max_shift > 3
    used, checked = registration.check_pair(vis, nir, 'register', 1.5)  # registered already: left as it is
    assert used is nir and checked.action == 'kept' and checked.after is None
    with pytest.raises(ValueError, match='policy'):
        registration.check_pair(vis, nir, 'fix', 1.5)


def test_a_pair_that_cannot_be_registered_is_reported_never_kept():
    vis, _ = _scene(2, 240, 320)
    unrelated = _scene(7, 240, 320)[1]  # another scene: structure everywhere, no common content
    used, checked = registration.check_pair(vis, unrelated, 'register', 1.5)
    assert checked.action == 'unregistrable' and not checked.used and used is unrelated
    assert checked.after['misalignment'] > 1.5 and 'could not be registered' in checked.describe()
    # a match on a few tiles (chance, in a NIR of another scene) does not count as registered
    assert not registration.is_within({'misalignment': 0.5, 'tile_share': 0.15}, 1.5)
    assert registration.is_within({'misalignment': 0.5, 'tile_share': 0.25}, 1.5)
    assert not registration.is_within({'misalignment': 1.6, 'tile_share': 1.0}, 1.5)
    summary = registration.registration_summary([checked.record()], 1.5)
    assert '1 could not be registered (left out); 0 of 1 are within 1.5 px' in summary


@pytest.fixture(scope='module')
def folder(tmp_path_factory) -> Path:
    """Pairs: registered, displaced by the known warp (twice), and one whose NIR shows another scene."""
    root = tmp_path_factory.mktemp('pairs')
    truth = _truth(H, W)
    for name, seed, kind in (('aligned', 3, 'same'), ('moved', 4, 'warp'), ('moved2', 5, 'warp'),
                             ('stranger', 6, 'other')):
        vis, nir = _scene(seed)
        nir = {'same': nir, 'warp': _moved(nir, truth), 'other': _scene(seed + 10)[1]}[kind]
        cv2.imwrite(str(root / f'{name}_rgb.png'), vis)
        cv2.imwrite(str(root / f'{name}_nir.png'), nir)
    return root


def test_semisynthetic_register_policy(folder, tmp_path, capsys):
    out = tmp_path / 'semi'
    keys, infos = semisynthetic.build_dataset(folder, out, scales=(4, ), variants=1, misaligned='register',
                                              max_misalignment=1.5, test_scenes=['moved2'], test_misaligned='keep')
    actions = {i['key']: i['action'] for i in infos}
    assert actions == {'aligned': 'kept', 'moved': 'registered', 'moved2': 'kept', 'stranger': 'unregistrable'}
    assert keys == {'train': ['aligned_v0', 'moved_v0'], 'test': ['moved2']}
    source = cv2.imread(str(folder / 'moved_rgb.png'))
    assert np.array_equal(cv2.imread(str(out / 'train' / 'HR' / 'VIS' / 'moved_v0.png')), source)  # VIS untouched
    with pytest.raises(CSPSRInputError, match='needs the test scenes'):
        semisynthetic.build_dataset(folder, tmp_path / 'x', scales=(4, ), misaligned='register', test_misaligned='keep')
    with pytest.raises(CSPSRInputError, match=r'moved_nir\.png .*--misaligned register'):
        semisynthetic.build_dataset(folder, tmp_path / 'y', scales=(4, ), misaligned='error')
    assert commands.make_semisynthetic_rgbnir(['--input', str(folder), '--out', str(tmp_path / 'cli'), '--scales', '4',
                                               '--misaligned', 'register', '--max-misalignment', '1.5',
                                               '--test-scenes', 'aligned', '--exclude', 'moved2']) == 0
    printed = capsys.readouterr().out
    assert 'stranger' in printed and 'skipped (could not be registered)' in printed
    assert 'moved2' in printed and '-> excluded' in printed
    assert ('3 pair(s) measured: 1 within 1.5 px as found, 1 registered (now within 1.5 px), 1 could not be '
            'registered (left out); 2 of 3 are within 1.5 px in the data set. 1 excluded.') in printed
    assert 'wrote train: 2, test: 1' in printed


def test_prepare_data_pairs_measures_and_registers(folder, tmp_path, capsys):
    run = commands.prepare_data
    assert run(['pairs', '--root', str(folder), '--out', str(tmp_path / 'kept'), '--scales', '4', '--n-proc', '1']) == 0
    printed = capsys.readouterr().out
    assert 'moved: misalignment' in printed and 'KEPT although not registered' in printed
    assert run(['pairs', '--root', str(folder), '--out', str(tmp_path / 'reg'), '--scales', '4', '--n-proc', '2',
                '--misaligned', 'register', '--max-misalignment', '1.5']) == 0
    printed = capsys.readouterr().out
    assert 'stranger: misalignment' in printed and 'skipped (could not be registered)' in printed
    assert '2 registered (now within 1.5 px), 1 could not be registered (left out)' in printed
    kept, reg = tmp_path / 'kept' / 'test', tmp_path / 'reg' / 'test'
    assert [line.split()[0] for line in (reg / 'meta_info.txt').read_text().split('\n') if line] == \
        ['aligned.png', 'moved.png', 'moved2.png']
    for stream in ('HR/VIS', 'LR_bicubic/X4/VIS'):  # the VIS files are byte for byte those of a plain run
        assert (reg / stream / 'moved.png').read_bytes() == (kept / stream / 'moved.png').read_bytes()
    assert (reg / 'HR/NIR/aligned.png').read_bytes() == (kept / 'HR/NIR/aligned.png').read_bytes()
    vis = cv2.imread(str(reg / 'HR/VIS/moved.png'))
    for split, limit in ((kept, 3), (reg, 1.5)):
        nir = cv2.imread(str(split / 'HR/NIR/moved.png'), cv2.IMREAD_UNCHANGED)
        assert (registration.measure_misalignment(vis, nir)['misalignment'] < 1.5) == (split == reg), limit
    assert run(['pairs', '--root', str(folder), '--out', str(tmp_path / 'reg'), '--scales', '4', '--misaligned',
                'register', '--max-misalignment', '1.5']) == 0
    assert '3 images per stream' in capsys.readouterr().out  # re-run: done pairs kept, the stranger still out
    assert run(['pairs', '--root', str(folder), '--out', str(tmp_path / 'err'), '--scales', '4',
                '--misaligned', 'error']) == 2
    err = capsys.readouterr().err
    assert 'moved_nir.png' in err and 'stranger_nir.png' in err and '--misaligned register' in err
    assert run(['pairs', '--root', str(folder), '--out', str(tmp_path / 'reg'), '--scales', '4']) == 2
    assert 'prepared with other settings' in capsys.readouterr().err  # registered split: not mixed with a plain one


@pytest.mark.skipif(not SHARED_COUNTRY.is_dir(), reason=f'EPFL country pairs not found at {SHARED_COUNTRY}')
def test_real_country_pairs():
    found = {}
    for key in ('0008', '0040', '0013'):
        vis = cv2.imread(str(SHARED_COUNTRY / f'{key}_rgb.jpg'))
        nir = cv2.imread(str(SHARED_COUNTRY / f'{key}_nir.jpg'), cv2.IMREAD_GRAYSCALE)
        found[key] = registration.check_pair(vis, nir, 'register', 1.5)[1]
    # registered as photographed; moved between the shots and registered by the tool; moved too much to register
    assert [found[k].action for k in ('0008', '0040', '0013')] == ['kept', 'registered', 'unregistrable'], found
    assert found['0040'].before['misalignment'] > 9 and found['0040'].after['misalignment'] < 1.0
