"""Importing cspsr_arch registers exactly the documented classes in BasicSR's registries."""
import subprocess
import sys

from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY


def test_registered_names():
    from cspsr_arch.archs.cspsr_arch import CSPSR
    from cspsr_arch.data.paired_cross_spectral_dataset import PairedCrossSpectralDataset
    from cspsr_arch.losses.cssc_loss import CrossSpectralSpatialConsistencyLoss
    from cspsr_arch.models.cspsr_model import CSPSRModel
    assert ARCH_REGISTRY.get('CSPSR') is CSPSR
    assert DATASET_REGISTRY.get('PairedCrossSpectralDataset') is PairedCrossSpectralDataset
    assert LOSS_REGISTRY.get('CrossSpectralSpatialConsistencyLoss') is CrossSpectralSpatialConsistencyLoss
    assert MODEL_REGISTRY.get('CSPSRModel') is CSPSRModel
    assert issubclass(CSPSRModel, SRModel)
    # only what differs from SRModel is overridden; validation comes from BasicSR
    own = {name for name in vars(CSPSRModel) if not name.startswith('__')}
    assert own == {'init_training_settings', 'feed_data', '_run', 'optimize_parameters', 'test', 'model_ema'}
    assert CSPSRModel.nondist_validation is SRModel.nondist_validation


def test_import_in_a_fresh_interpreter_registers_once():
    code = ('import cspsr_arch, cspsr_arch.archs, importlib; importlib.import_module("cspsr_arch.models"); '
            'from basicsr.utils.registry import ARCH_REGISTRY; print("CSPSR" in ARCH_REGISTRY)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'True'
