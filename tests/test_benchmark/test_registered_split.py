"""The benchmark's registered test split of the country pairs (``country_registered``), the training-pair policy
(``--country-train``), the HR-NIR row (``CSPSR_HRNIR``) and the split's targets."""
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from registration_pairs import moved as _moved, scene as _scene, truth as _truth

from cspsr_arch.benchmark import data as tool
from cspsr_arch.benchmark.presets import CPU, QUICK, REGISTERED_BLOCK, REGISTERED_TEST
from cspsr_arch.errors import CSPSRInputError

ROOT = Path(__file__).resolve().parents[2]


def test_the_registered_split_is_the_registered_block_and_the_settings_keep_both_test_splits_out_of_training():
    assert set(REGISTERED_TEST) | {'0003'} == set(REGISTERED_BLOCK) and len(REGISTERED_TEST) >= 8
    both = tool.country_settings(CPU, ['country', 'country_registered'], 'register')
    assert set(both['country']['exclude']) == set(REGISTERED_BLOCK)  # the other split's tests and its excluded pair
    assert set(both['country_registered']['exclude']) == set(CPU.country['test_scenes']) | {'0003'}
    assert both['country_registered']['train'] is False and 'train' not in both['country']
    for settings in both.values():
        assert (settings['misaligned'], settings['test_misaligned'], settings['max_misalignment']) == \
            ('register', 'keep', 1.5)
    alone = tool.country_settings(CPU, ['country_registered'])
    assert alone['country_registered']['exclude'] == ('0003', ) and 'train' not in alone['country_registered']
    assert alone['country_registered']['misaligned'] == 'keep' and 'test_misaligned' not in alone['country_registered']
    assert tool.country_settings(CPU, ['country']) == {'country': dict(CPU.country)}  # as before
    with pytest.raises(CSPSRInputError, match='--country-train'):
        tool.country_settings(CPU, ['country'], 'fix')


@pytest.fixture(scope='module')
def country(tmp_path_factory) -> Path:
    """Six 'country' pairs: 0002 and 0004 registered (the registered split's first keys), 0005 registered,
    0003 and 0040 displaced by a known warp, 0041 (the other split's test key) registered."""
    root = tmp_path_factory.mktemp('country')
    for seed, key in enumerate(('0002', '0003', '0004', '0005', '0040', '0041')):
        vis, nir = _scene(seed, 256, 320)
        if key in ('0003', '0040'):
            nir = _moved(nir, _truth(256, 320))
        cv2.imwrite(str(root / f'{key}_rgb.png'), vis)
        cv2.imwrite(str(root / f'{key}_nir.png'), nir)
    return root


def test_no_test_photograph_of_either_split_is_trained_on(country, tmp_path):
    preset = dataclasses.replace(
        QUICK, country={'max_size': 128, 'variants': 1, 'test_scenes': ('0040', '0041'), 'misaligned': 'keep'},
        country_registered={'max_size': 128, 'variants': 1, 'test_scenes': ('0002', '0004'), 'exclude': ('0003', ),
                            'misaligned': 'keep'})
    data = tool.prepare_data(tmp_path / 'data', preset, None, country, ['country', 'country_registered'], 'register')
    assert data['country']['keys'] == {'train': ['0005_v0'], 'test': ['0040', '0041']}
    assert data['country_registered']['keys'] == {'test': ['0002', '0004']}
    actions = {k: v['action'] for k, v in data['country']['registration'].items()}
    assert actions['0040'] == 'kept' and actions['0003'] == 'kept'  # a test photograph as taken; excluded: measured
    assert 'test photographs as they were taken' in data['country']['description']
    assert 'test split only' in data['country_registered']['description']
    train = tool.combine_train_splits(data, tmp_path / 'train', [4])
    assert (train / 'meta_info.txt').read_text().split('\n')[0].startswith('country__0005_v0.png')
    assert len((train / 'meta_info.txt').read_text().split('\n')) == 2  # one image and the final newline
    # alone, the registered split trains on every other pair: the displaced ones registered by the tool
    preset = dataclasses.replace(preset, country_registered=dict(preset.country_registered, exclude=()))
    alone = tool.prepare_data(tmp_path / 'alone', preset, None, country, ['country_registered'], 'register')
    assert alone['country_registered']['keys']['train'] == ['0003_v0', '0005_v0', '0040_v0', '0041_v0']
    assert alone['country_registered']['registration']['0040']['action'] == 'registered'
    assert 'training pairs registered by the tool' in alone['country_registered']['description']


def test_the_hr_nir_row_reads_the_hr_nir_and_its_network_takes_it(tmp_path):
    from toy_data import make_toy_split

    from cspsr_arch.benchmark.evaluation import test_loader
    from cspsr_arch.benchmark.runs import plan
    from cspsr_arch.engine.options import check_options
    make_toy_split(tmp_path / 'train', scales=(2, 4))
    runs = plan(ROOT / 'options', tmp_path / 'train', CPU, ['CSPSR', 'CSPSR_HRNIR', 'CSPSR_HRNIR_given'],
                ablations=False)
    hr, lr, oracle = (runs.table['bicubic'][4][row][0].opt for row in ('CSPSR_HRNIR', 'CSPSR', 'CSPSR_HRNIR_given'))
    assert hr['network_g'] == dict(lr['network_g'], nir_scale=4)
    assert dict(oracle['network_g'], max_disp=12) == dict(hr['network_g'], cvm='given') and 'pretrain_network_disp' not in oracle['path']
    assert oracle['datasets']['train']['dataroot_disp'].endswith('LR_bicubic/X4/DISP_L')
    assert oracle['datasets']['train']['nir_scale'] == 4
    train = hr['datasets']['train']
    assert train['nir_scale'] == 4 and train['dataroot_lq_nir'] == str(tmp_path / 'train' / 'HR' / 'NIR')
    assert 'nir_scale' not in lr['datasets']['train'] and hr['path'] == lr['path']  # the same CVM pre-training
    check_options(dict(hr, is_train=True, path={k: v for k, v in hr['path'].items() if k != 'pretrain_network_disp'}))
    sample = next(iter(test_loader(tmp_path / 'train', 4, nir_scale=4)))
    assert sample['lq_nir'].shape[-2:] == sample['gt'].shape[-2:]
    assert np.array_equal(sample['lq_nir'].numpy(), sample['gt_nir'].numpy())
    half = next(iter(test_loader(tmp_path / 'train', 4, nir_scale=2)))
    assert half['lq_nir'].shape[-1] == 2 * half['lq'].shape[-1]


def test_the_registered_split_targets():
    from cspsr_arch.benchmark.results import targets

    def rows(edsr: float, cspsr: float, hr: float, zero: float) -> dict:
        return {'x4': {'EDSR': {'psnr': edsr}, 'CSPSR': {'psnr': cspsr, 'nir_zero': {'loss_db': zero}},
                       'CSPSR_HRNIR': {'psnr': hr}}}

    report = {'results': {'bicubic': {'country_registered': rows(30.0, 30.1, 31.2, 0.1)},
                          'camera': {'country_registered': rows(27.0, 27.2, 28.0, 0.4)}},
              'profile': {'scales': {}}}
    found = {t['what']: (round(t['delta_db'], 2), t['met']) for t in targets(report)}
    assert found == {'CSPSR_HRNIR - EDSR, country_registered, bicubic, x4': (1.2, True),
                     'CSPSR - EDSR, country_registered, camera, x4': (0.2, False),
                     'CSPSR loss with its NIR zeroed, country_registered, camera, x4': (0.4, True)}


def test_the_report_says_which_training_pairs_were_used():
    from cspsr_arch.benchmark.report import training_pairs_note
    assert training_pairs_note('preset') is None
    assert 'registered by the tool' in training_pairs_note('register')
    assert 'only registered pairs train' in training_pairs_note('skip') and '--country-train skip' in \
        training_pairs_note('skip')
    assert training_pairs_note('keep').endswith('Test photographs are scored as they were taken.')
