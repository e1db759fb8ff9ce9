# Quick start: `make demo` (train + evaluate a small CSPSR on the embedded synthetic data, CPU) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cspsr-installed

.PHONY: venv test demo clean-demo mutants

# The venv's own setuptools is too old for an editable install without build isolation; torch and
# torchvision come from the machine's wheel store when it has one (no multi-GB download).
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install "setuptools>=70.1"
	$(PY) -m pip install --no-build-isolation -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# One pytest-xdist worker per core (JOBS=N for N, JOBS=0 for one process); --dist loadfile keeps each test
# file on one worker, so a module-scoped fixture (the quick benchmark in test_benchmark_pipeline.py, the
# trained model of test_infer_command.py, ...) is built once. tests/conftest.py gives each worker its share
# of the cores' threads.
test: $(STAMP)
	$(PY) -m pytest -n $(or $(JOBS),auto) --dist loadfile tests

demo: $(STAMP)
	$(PY) tools/demo.py

clean-demo:
	rm -rf datasets/demo experiments/CSPSR_demo_x4 experiments/VISonly_demo_x4 results/demo tb_logger/CSPSR_demo_x4 tb_logger/VISonly_demo_x4

# Mutation testing, outside CI (about 20-30 min on 2 cores; configuration in setup.cfg [mutmut]): mutates the
# core modules and runs the fast unit tests against each mutant; `$(VENV)/bin/mutmut browse` or
# `$(VENV)/bin/mutmut show NAME` for a surviving mutant. MUTMUT_ARGS="NAME_GLOB" runs a subset.
mutants: $(STAMP)
	$(PY) -m pip install -q -e ".[mutation]" --no-build-isolation
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children $(or $(JOBS),2) $(MUTMUT_ARGS)
	$(PY) tools/mutation_score.py
