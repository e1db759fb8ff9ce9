"""Where the benchmark finds the repository and the real pairs (shared by the pipeline, profiling and release)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository (its ``options`` and ``tools`` folders)."""
DEFAULT_REAL = ROOT.parent / 'shared' / 'data' / 'real_rgbnir'
"""The six real RGB-NIR pairs, beside the repository."""
DEFAULT_COUNTRY = ROOT.parent / 'shared' / 'data' / 'nirscene_country'
"""The EPFL country pairs, beside the repository."""
