"""Install cspsr: a BasicSR plugin for NIR-guided (cross-spectral) image super-resolution."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


ONNX_REQUIRES = ['onnx>=1.16', 'onnxscript>=0.2', 'onnxruntime>=1.17']


def read_version() -> str:
    """Read ``__version__`` from ``cspsr_arch/version.py`` without importing the package."""
    namespace: dict = {}
    exec((HERE / 'cspsr_arch' / 'version.py').read_text(), namespace)
    return namespace['__version__']


setup(
    name='cspsr',
    version=read_version(),
    description='CSPSR: learning a cross-spectral (NIR) prior for image super-resolution, as a BasicSR plugin',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8') if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['cspsr_arch', 'cspsr_arch.*']),
    include_package_data=True,
    install_requires=[
        # Upstream BasicSR master under another name; the PyPI ``basicsr`` 1.4.2 does not import with
        # torchvision >= 0.17 (it imports ``torchvision.transforms.functional_tensor``).
        'basicsr-fixed==1.4.2',
        'torch>=1.13',
        'torchvision>=0.14',
        'opencv-python>=4.5',
        'lmdb>=1.0',
        'pyyaml>=5.1',
        'numpy>=1.21',
        'addict>=2.4',
        'tqdm>=4.0',
        # Ships the photographs and the Middlebury stereo pair the embedded demo data set is made from.
        'scikit-image>=0.19',
        # The HAT baseline (cspsr_arch/archs/hat_arch.py) is spandrel's implementation.
        'spandrel>=0.4',
    ],
    extras_require={
        # tools/export_onnx.py: torch.onnx's torch.export-based exporter needs onnxscript; the check runs onnxruntime
        'onnx': ONNX_REQUIRES,
        # pytest-xdist: `make test` runs the suite on every core (-n auto)
        'test': ['pytest>=7', 'pytest-xdist>=3', *ONNX_REQUIRES],
        # `make mutants` (mutation testing of the core modules; not part of CI)
        'mutation': ['pytest>=7', 'mutmut>=3.3'],
    },
    entry_points={'console_scripts': ['basicsr = cspsr_arch.cli:main']},
)
