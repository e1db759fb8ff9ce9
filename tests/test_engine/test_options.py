"""Strict option checking: unknown keys anywhere are errors that name the key."""
import copy
import re
from pathlib import Path

import pytest
from basicsr.utils.options import yaml_load

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.engine.options import check_options, load_options

OPTIONS = Path(__file__).resolve().parents[2] / 'options'


def _redirected(name: str, split) -> dict:
    """A demo options file with its data paths pointed at a toy split."""
    opt = yaml_load(str(OPTIONS / name))
    for dataset in opt['datasets'].values():
        for key, value in dataset.items():
            if isinstance(value, str) and value.startswith('datasets/demo/'):
                dataset[key] = value.replace('datasets/demo/test', str(split)).replace('datasets/demo/train', str(split))
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    return opt


@pytest.fixture
def demo_opt(toy_split):
    return _redirected('demo_CSPSR_x4.yml', toy_split[0])


def test_shipped_options_use_only_known_keys(demo_opt):
    check_options(demo_opt)  # the demo files with their data paths redirected
    check_options(_redirected('demo_disparity_x4.yml', demo_opt['datasets']['train']['dataroot_gt'].rsplit('/HR', 1)[0]))
    names = [p.relative_to(OPTIONS).as_posix() for p in sorted(OPTIONS.rglob('*.yml'))
             if not p.name.startswith('demo_') and p.parent.name != '_base']
    assert len(names) == 44, names  # every train, test and ablation file
    for name in names:
        opt = load_options(str(OPTIONS / name))
        opt.update(is_train=name.startswith('train'), dist=False, rank=0, world_size=1, auto_resume=False)
        with pytest.raises(CSPSRInputError, match='Data not found'):  # keys pass; only the data is missing
            check_options(opt)


def _differences(a, b, prefix=''):
    """Places (``'datasets:train:dataroot_lq'``) where two resolved option trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {place for key in set(a) | set(b) for place in _differences(a.get(key), b.get(key), f'{prefix}{key}:')}
    return set() if a == b else {prefix[:-1]}


@pytest.mark.parametrize('model', ['CSPSR', 'EDSR', 'RCAN', 'HAT', 'ConcatNIR', 'disparity', 'PASSR', 'NAFSSR', 'NLSN',
                                   'ENLCN', 'SMSR'])
def test_x2_options_are_the_x4_options_at_scale_2(model):
    x4, x2 = (load_options(str(OPTIONS / f'train_{model}_x{s}.yml')) for s in (4, 2))
    assert x2['scale'] == 2 and x2['name'] == x4['name'].replace('_x4_', '_x2_')
    assert not re.search(r'X4|_x4', str(x2)), 'an x4 stream or checkpoint left in the x2 options'
    follow_scale = {'name', 'scale'}
    for place in _differences(x4, x2) - follow_scale:
        old, new = x4, x2
        for part in place.split(':'):
            old, new = old[part], new[part]
        if 'dataroot' in place or 'pretrain_network_disp' in place:  # the x2 streams and checkpoints
            assert new == old.replace('X4', 'X2').replace('_x4_', '_x2_') != old, place
        elif place in ('network_g:max_disp', 'train:shift_augment'):  # disparities in LR pixels double at x2
            assert new == 2 * old, place
        elif place == 'datasets:train:gt_size':  # the stereo network's LR patches grow with its disparities
            assert model == 'disparity' and new // 2 > old // 4, place
        else:  # the network's upscale and the metrics' border are the scale
            assert place in ('network_g:upscale', 'val:metrics:psnr:crop_border', 'val:metrics:ssim:crop_border'), place
            assert (old, new) == (4, 2), place


@pytest.mark.parametrize('place, key, message', [
    (('network_g', ), 'num_feats', "Unknown option 'network_g:num_feats'. Did you mean 'num_feat'?"),
    (('train', 'cssc_opt'), 'weight', "Unknown option 'train:cssc_opt:weight'"),
    (('train', 'scheduler'), 'period', "Did you mean 'periods'?"),
    (('datasets', 'train'), 'gt_szie', "Did you mean 'gt_size'?"),
    (('val', 'metrics', 'psnr'), 'crop_boarder', "Did you mean 'crop_border'?"),
    ((), 'nmae', "Unknown option 'opt:nmae'"),
])
def test_unknown_key_is_named(demo_opt, place, key, message):
    opt = copy.deepcopy(demo_opt)
    section = opt
    for part in place:
        section = section[part]
    section[key] = 1
    with pytest.raises(CSPSRInputError, match=message):
        check_options(opt)


def test_scale_mismatch_and_unknown_types(demo_opt):
    opt = copy.deepcopy(demo_opt)
    opt['network_g']['upscale'] = 2
    with pytest.raises(CSPSRInputError, match='upscale'):
        check_options(opt)
    opt = copy.deepcopy(demo_opt)
    opt['network_g']['type'] = 'CSPSRR'
    with pytest.raises(CSPSRInputError, match="'CSPSRR'.*not registered"):
        check_options(opt)
    opt = copy.deepcopy(demo_opt)
    opt['train']['optim_g']['type'] = 'Adamm'
    with pytest.raises(CSPSRInputError, match='optim_g:type must be one of'):
        check_options(opt)


def test_disparity_metric_keys_are_checked(demo_opt):
    opt = copy.deepcopy(demo_opt)
    opt['val']['metrics'] = {'bad': {'type': 'calculate_bad_pixel_rate', 'threshold': 3.0, 'better': 'lower'}}
    check_options(opt)
    opt['val']['metrics']['bad']['treshold'] = 1.0
    with pytest.raises(CSPSRInputError, match="Did you mean 'threshold'?"):
        check_options(opt)
    opt['val']['metrics'] = {'x': {'type': 'calculate_psnrr'}}
    with pytest.raises(CSPSRInputError, match='not registered'):
        check_options(opt)


def test_base_files_merge_recursively_and_report_loops(tmp_path):
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'root.yml').write_text('name: root\ntrain:\n  lr: 1\n  milestones: [1, 2]\n  keep: yes\n'
                                       'path:\n  a: x\n')
    (tmp_path / 'sub' / 'mid.yml').write_text('base: ../root.yml\ntrain:\n  lr: 2\n  milestones: [3]\n')
    (tmp_path / 'sub' / 'leaf.yml').write_text('base: mid.yml\nname: leaf\npath:\n  a: ~\n')
    opt = load_options(str(tmp_path / 'sub' / 'leaf.yml'))
    assert opt == {'name': 'leaf', 'train': {'lr': 2, 'milestones': [3], 'keep': True}, 'path': {'a': None}}
    (tmp_path / 'loop_a.yml').write_text('base: loop_b.yml\n')
    (tmp_path / 'loop_b.yml').write_text('base: loop_a.yml\n')
    with pytest.raises(CSPSRInputError, match='loop'):
        load_options(str(tmp_path / 'loop_a.yml'))
    (tmp_path / 'orphan.yml').write_text('base: nowhere.yml\n')
    with pytest.raises(CSPSRInputError, match='not found.*nowhere.yml.*base of'):
        load_options(str(tmp_path / 'orphan.yml'))


def test_train_compile_is_accepted_for_cspsr_only(demo_opt):
    opt = copy.deepcopy(demo_opt)
    opt['train']['compile'] = True
    check_options(opt)  # accepted
    opt['train']['compile'] = 'yes'
    with pytest.raises(CSPSRInputError, match='train:compile must be true or false'):
        check_options(opt)
    opt['train']['compile'] = True
    opt['model_type'] = 'SRModel'
    with pytest.raises(CSPSRInputError, match='read by CSPSRModel only'):
        check_options(opt)


def test_dataset_nir_scale_is_a_known_key(demo_opt):
    opt = copy.deepcopy(demo_opt)
    opt['network_g']['nir_scale'] = 4
    for dataset in opt['datasets'].values():
        dataset['nir_scale'] = 4
    check_options(opt)  # accepted in network_g and in every PairedCrossSpectralDataset
    opt['datasets']['train']['nir_scal'] = 4
    with pytest.raises(CSPSRInputError, match="Unknown option 'datasets:train:nir_scal'. Did you mean 'nir_scale'?"):
        check_options(opt)


def test_the_hr_nir_option_file_is_the_paper_model_with_the_nir_at_the_hr_size():
    base, hr = (load_options(str(OPTIONS / f'train_CSPSR{v}_x4.yml')) for v in ('', '_HRNIR'))
    assert hr['network_g'] == {**base['network_g'], 'nir_scale': 4}
    for name, dataset in hr['datasets'].items():
        assert dataset['nir_scale'] == 4 and dataset['dataroot_lq_nir'] == dataset['dataroot_gt_nir'], name
        assert {k: v for k, v in dataset.items() if k not in ('nir_scale', 'dataroot_lq_nir')} == \
            {k: v for k, v in base['datasets'][name].items() if k != 'dataroot_lq_nir'}, name
    assert {k: v for k, v in hr.items() if k not in ('name', 'network_g', 'datasets')} == \
        {k: v for k, v in base.items() if k not in ('name', 'network_g', 'datasets')}
