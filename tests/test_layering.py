"""Which parts of the package may import which: data preparation sits below the data sets, and the benchmark's
profiling does not import its pipeline."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'cspsr_arch'


def imports(path: Path) -> set:
    """Every ``cspsr_arch`` module a file imports (at the top or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('cspsr_arch'):
            found.add(node.module)
            found.update(f'{node.module}.{alias.name}' for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith('cspsr_arch'))
    return found


def test_data_preparation_does_not_import_the_data_sets():
    for path in sorted((PACKAGE / 'prep').rglob('*.py')):
        upward = sorted(m for m in imports(path) if m.startswith('cspsr_arch.data'))
        assert not upward, f'{path.relative_to(PACKAGE)} imports {upward}'


def test_the_benchmark_profiling_does_not_import_the_pipeline():
    """The pipeline runs the profiler; the profiler needs nothing of the pipeline (no import cycle)."""
    profile = PACKAGE / 'benchmark' / 'profile.py'
    assert not any(m.startswith('cspsr_arch.benchmark.pipeline') for m in imports(profile))
