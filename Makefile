# Two commands do all the set-up on a fresh clone:
#   make demo   # creates .venv, installs physnn, trains a vowel classifier through simulated hardware
#   make test   # creates .venv, installs physnn with test extras, runs the test suite
# torch is pinned to the CPU wheel here (pyproject.toml keeps a permissive range for users).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

# Datasets: an explicit PHYSNN_DATA wins; else ../shared/datasets beside the clone (CI), if present.
PHYSNN_DATA ?= $(wildcard $(abspath ../shared/datasets))
export PHYSNN_DATA
export NUMBA_CACHE_DIR ?= $(abspath .numba_cache)
export MPLBACKEND := Agg

.PHONY: demo test test-slow bench lint install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(VENV)/bin/physnn demo

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

lint: install
	$(PY) -m ruff check physnn tests examples benchmarks
