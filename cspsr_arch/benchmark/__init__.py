"""The benchmark behind ``tools/benchmark.py``: presets, option files of every run, in-process training,
evaluation with BasicSR's metrics, and the report (tables, JSON, comparison picture)."""
