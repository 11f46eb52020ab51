# Two commands do all the set-up on a fresh clone:
#   make demo   # creates .venv, installs physnn (base only), trains a vowel classifier through simulated hardware
#   make test   # adds the test extras (every device family) to the same .venv, runs the test suite
#   make docs   # adds the docs extra, builds the site into docs/_build/html (warnings are errors)
# Either order works: each has its own stamp. torch is pinned to the CPU wheel here (pyproject.toml keeps a
# permissive range for users).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

# Datasets: an explicit PHYSNN_DATA wins; else ../shared/datasets beside the clone (CI), if present.
PHYSNN_DATA ?= $(wildcard $(abspath ../shared/datasets))
export PHYSNN_DATA
export NUMBA_CACHE_DIR ?= $(abspath .numba_cache)
export MPLBACKEND := Agg

.PHONY: demo test test-slow bench lint install docs

install: $(VENV)/.test-installed

# the venv with the pinned torch: shared by the demo and the test installs
$(VENV)/.torch-installed:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PIN)
	touch $@

$(VENV)/.demo-installed: pyproject.toml $(VENV)/.torch-installed
	$(PY) -m pip install --quiet -e .
	touch $@

# the test extras include the base install, so they also satisfy the demo's stamp
$(VENV)/.test-installed: pyproject.toml $(VENV)/.torch-installed
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

# the docs import every device family (autodoc), so they build on the test install
$(VENV)/.docs-installed: pyproject.toml $(VENV)/.test-installed
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	touch $@

demo: $(VENV)/.demo-installed
	$(VENV)/bin/physnn demo

test: install
	@echo "make test: the fast suite takes about 5 minutes on 2 cores (more when they are busy); skip reasons are listed at the end"
	$(PY) -m pytest -q -rs

test-slow: install
	$(PY) -m pytest -q -rs -m slow

bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

lint: install
	$(PY) -m ruff check physnn tests examples benchmarks

# -W --keep-going: every warning (broken docstring markup, link or heading anchor) is listed, then fails the build;
# -n: every cross-reference must resolve (docs/conf.py lists what is not checked, and why);
# -E: every page re-read, so a warning is never hidden by the cache of an unchanged page
docs: $(VENV)/.docs-installed
	$(VENV)/bin/sphinx-build -W --keep-going -n -E -q -b html docs docs/_build/html
	@echo "make docs: open docs/_build/html/index.html"
