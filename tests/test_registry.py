"""Importing cspsr_arch registers exactly the documented classes in BasicSR's registries."""
import subprocess
import sys

from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY


def test_registered_names():
    from cspsr_arch.archs.cspsr_arch import CSPSR
    from cspsr_arch.data.paired_cross_spectral_dataset import PairedCrossSpectralDataset
    from cspsr_arch.losses.cssc_loss import CrossSpectralSpatialConsistencyLoss
    from cspsr_arch.archs.cross_spectral_stereo_arch import CrossSpectralStereoNet
    from cspsr_arch.losses.stereo_loss import UnsupervisedStereoLoss
    from cspsr_arch.models.cross_spectral_stereo_model import CrossSpectralStereoModel
    from cspsr_arch.models.cspsr_model import CSPSRModel
    assert ARCH_REGISTRY.get('CSPSR') is CSPSR
    assert ARCH_REGISTRY.get('CrossSpectralStereoNet') is CrossSpectralStereoNet
    assert LOSS_REGISTRY.get('UnsupervisedStereoLoss') is UnsupervisedStereoLoss
    assert MODEL_REGISTRY.get('CrossSpectralStereoModel') is CrossSpectralStereoModel
    assert {'calculate_disparity_rmse', 'calculate_bad_pixel_rate'} <= set(METRIC_REGISTRY.keys())
    assert DATASET_REGISTRY.get('PairedCrossSpectralDataset') is PairedCrossSpectralDataset
    assert LOSS_REGISTRY.get('CrossSpectralSpatialConsistencyLoss') is CrossSpectralSpatialConsistencyLoss
    assert MODEL_REGISTRY.get('CSPSRModel') is CSPSRModel
    assert issubclass(CSPSRModel, SRModel)
    # only what differs from SRModel is overridden; the validation loop comes from BasicSR ('validation' only
    # caps the label of the run's last validation at total_iter before calling BasicSR's)
    own = {name for name in vars(CSPSRModel) if not name.startswith('__')}
    assert own == {'init_training_settings', '_load_disp_network', 'feed_data', '_run',
                   'optimize_parameters', '_losses', 'test', 'model_ema', 'validation'}
    assert CSPSRModel.nondist_validation is SRModel.nondist_validation


def test_import_in_a_fresh_interpreter_registers_once():
    code = ('import cspsr_arch, cspsr_arch.archs, importlib; importlib.import_module("cspsr_arch.models"); '
            'from basicsr.utils.registry import ARCH_REGISTRY; print("CSPSR" in ARCH_REGISTRY)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'True'
