"""Named CSPSR variants as benchmark rows: planned from their option file at CSPSR's size in every preset, with the
CSPSR's learned CVM pre-training, and run by ``--models``."""
from pathlib import Path

from basicsr.utils.registry import ARCH_REGISTRY
from toy_data import make_toy_split

OPTIONS = Path(__file__).resolve().parents[2] / 'options'


def _params(network: dict) -> int:
    options = dict(network)
    return sum(p.numel() for p in ARCH_REGISTRY.get(options.pop('type'))(**options).parameters())


VIS_PATH = {'CSPSR_additive': 'additive', 'CSPSR_vis_block': 'residual_block'}


def test_the_variants_are_planned_at_cspsrs_size_with_its_cvm_pre_training(tmp_path):
    from cspsr_arch.benchmark.presets import CPU, QUICK, VARIANT_MODELS
    from cspsr_arch.benchmark.runs import plan
    from cspsr_arch.engine.options import check_options
    make_toy_split(tmp_path / 'train', scales=(4, ))
    assert VARIANT_MODELS == (*VIS_PATH, 'CSPSR_HRNIR_align', 'CSPSR_HRNIR_path')
    for preset in (QUICK, CPU):
        runs = plan(OPTIONS, tmp_path / 'train', preset, ['CSPSR', *VIS_PATH], ablations=False)
        rows = runs.table['bicubic'][4]
        cspsr = rows['CSPSR'][0]
        for name, vis_path in VIS_PATH.items():
            variant = rows[name][0]
            check_options(dict(variant.opt, is_train=True))  # every key one the code reads
            assert variant.opt['network_g']['vis_path'] == vis_path and 'vis_path' not in cspsr.opt['network_g']
            assert variant.stereo == cspsr.stereo and variant.stereo is not None  # the same pre-trained CVM
            assert variant.opt['model_type'] == 'CSPSRModel'
            assert variant.opt['train']['cssc_opt'] == cspsr.opt['train']['cssc_opt']
            assert abs(_params(variant.opt['network_g']) / _params(cspsr.opt['network_g']) - 1) < 0.1, preset.name
        additive, ablation = (rows[name][0].opt['network_g'] for name in VIS_PATH)
        assert {k: v for k, v in additive.items() if k != 'vis_path'} == \
            {k: v for k, v in ablation.items() if k != 'vis_path'}  # the ablation differs by the scale alone
        num_dmf, num_feat = additive['num_dmf'], additive['num_feat']
        assert _params(additive) - _params(ablation) == num_dmf * num_feat  # one scale per channel and module


def test_the_hr_nir_variant_rows_are_the_hr_nir_row_plus_one_option(tmp_path):
    """``CSPSR_HRNIR_align`` / ``_path``: ``CSPSR_HRNIR``'s network, data and CVM pre-training, plus ``nir_align``
    with the alignment's window set to the preset's training patch (the option file's 120 would be refused), or
    plus ``nir_path``."""
    from cspsr_arch.benchmark.presets import CPU, QUICK
    from cspsr_arch.benchmark.results import NIR_MODELS
    from cspsr_arch.benchmark.runs import plan
    from cspsr_arch.engine.options import check_options
    make_toy_split(tmp_path / 'train', scales=(4, ))
    assert {'CSPSR_HRNIR_align', 'CSPSR_HRNIR_path'} <= set(NIR_MODELS)
    for preset in (QUICK, CPU):
        names = ('CSPSR_HRNIR', 'CSPSR_HRNIR_align', 'CSPSR_HRNIR_path')
        rows = plan(OPTIONS, tmp_path / 'train', preset, list(names), ablations=False)
        hr, aligned, path = (rows.table['bicubic'][4][name][0] for name in names)
        assert aligned.opt['network_g'] == dict(hr.opt['network_g'], nir_align=True, warp_window=preset.gt_size)
        assert path.opt['network_g'] == dict(hr.opt['network_g'], nir_path=True)
        for row in (aligned, path):
            check_options(dict(row.opt, is_train=True))
            assert row.opt['datasets'] == hr.opt['datasets'] and row.stereo == hr.stereo is not None
            assert row.opt['train'] == hr.opt['train']


def test_the_paper_size_option_files_keep_cspsrs_parameter_budget():
    from cspsr_arch.engine.options import load_options
    cspsr = load_options(str(OPTIONS / 'train_CSPSR_x4.yml'))['network_g']
    for name, vis_path in VIS_PATH.items():
        variant = load_options(str(OPTIONS / f'train_{name}_x4.yml'))['network_g']
        assert variant['vis_path'] == vis_path
        assert {k: v for k, v in variant.items() if k not in ('num_feat', 'vis_path')} == \
            {k: v for k, v in cspsr.items() if k != 'num_feat'}
        assert abs(_params(variant) / _params(cspsr) - 1) < 0.02, name


def test_models_and_network_items_take_the_variant():
    from cspsr_arch.benchmark.presets import CPU, with_networks
    from cspsr_arch.benchmark.results import NIR_MODELS
    assert with_networks(CPU, ['CSPSR_additive.num_feat=20']).networks['CSPSR_additive']['num_feat'] == 20
    assert set(VIS_PATH) <= set(NIR_MODELS)  # their NIR-zeroed and swapped rows are measured
