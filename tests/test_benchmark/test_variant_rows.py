"""Named CSPSR variants as benchmark rows: planned from their option file at CSPSR's size in every preset, with the
CSPSR's learned CVM pre-training, and run by ``--models``."""
from pathlib import Path

from basicsr.utils.registry import ARCH_REGISTRY
from toy_data import make_toy_split

OPTIONS = Path(__file__).resolve().parents[2] / 'options'


def _params(network: dict) -> int:
    options = dict(network)
    return sum(p.numel() for p in ARCH_REGISTRY.get(options.pop('type'))(**options).parameters())


def test_the_additive_variant_is_planned_at_cspsrs_size_with_its_cvm_pre_training(tmp_path):
    from cspsr_arch.benchmark.presets import CPU, QUICK, VARIANT_MODELS
    from cspsr_arch.benchmark.runs import plan
    from cspsr_arch.engine.options import check_options
    make_toy_split(tmp_path / 'train', scales=(4, ))
    assert VARIANT_MODELS == ('CSPSR_additive', )
    for preset in (QUICK, CPU):
        runs = plan(OPTIONS, tmp_path / 'train', preset, ['CSPSR', 'CSPSR_additive'], ablations=False)
        rows = runs.table['bicubic'][4]
        cspsr, variant = rows['CSPSR'][0], rows['CSPSR_additive'][0]
        check_options(dict(variant.opt, is_train=True))  # every key one the code reads
        assert variant.opt['network_g']['vis_path'] == 'additive' and 'vis_path' not in cspsr.opt['network_g']
        assert variant.stereo == cspsr.stereo and variant.stereo is not None  # the same pre-trained CVM
        assert variant.opt['model_type'] == 'CSPSRModel' and variant.opt['train']['cssc_opt'] == cspsr.opt['train']['cssc_opt']
        assert abs(_params(variant.opt['network_g']) / _params(cspsr.opt['network_g']) - 1) < 0.1, preset.name


def test_the_paper_size_option_file_keeps_cspsrs_parameter_budget():
    from cspsr_arch.engine.options import load_options
    cspsr = load_options(str(OPTIONS / 'train_CSPSR_x4.yml'))['network_g']
    variant = load_options(str(OPTIONS / 'train_CSPSR_additive_x4.yml'))['network_g']
    assert {k: v for k, v in variant.items() if k not in ('num_feat', 'vis_path')} == \
        {k: v for k, v in cspsr.items() if k != 'num_feat'}
    assert abs(_params(variant) / _params(cspsr) - 1) < 0.02


def test_models_and_network_items_take_the_variant():
    from cspsr_arch.benchmark.presets import CPU, with_networks
    from cspsr_arch.benchmark.results import NIR_MODELS
    assert with_networks(CPU, ['CSPSR_additive.num_feat=20']).networks['CSPSR_additive']['num_feat'] == 20
    assert 'CSPSR_additive' in NIR_MODELS  # its NIR-zeroed and swapped rows are measured
