# Set-up is automatic: every target below creates .venv and installs the package when needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
EXTRAS ?= test
comma  := ,
LINTED := $(wildcard gradcheck nets tests examples benchmarks tools)
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: check test lint bench docs mutants letters clean setup

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

check: $(STAMP)
	$(PY) -m gradcheck check --all --out reports

test: $(STAMP)
	$(PY) -m ruff format --check $(LINTED)
	$(PY) -m ruff check $(LINTED)
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider

# Benchmarks against scipy, numdifftools and torch (the bench extra); writes reports/bench.md,
# and fast mode's targets (reports/bench-fast.md; the 10^7 net: python -m benchmarks.fast --big).
# One BLAS thread: multithreaded small matmuls on a shared machine make timings erratic.
bench:
	$(MAKE) setup EXTRAS=test,bench
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(PY) -m benchmarks.bench --out reports/bench.md
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(PY) -m benchmarks.fast --out reports/bench-fast.md
	$(PY) -m benchmarks.numerics --out reports/numerics.md

# The documentation site (the docs extra: mkdocs, mkdocs-material, mkdocstrings) into site/;
# any warning (a broken link, a docstring mkdocstrings cannot read) fails the build.
docs:
	$(MAKE) setup EXTRAS=test,docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

lint: $(STAMP)
	$(PY) -m ruff format --check $(LINTED)
	$(PY) -m ruff check $(LINTED)
	$(PY) -m mypy

letters: $(STAMP)
	$(PY) -m nets.letters

mutants: $(STAMP)
	$(PY) -m tools.mutants

clean:
	rm -rf $(VENV) build site *.egg-info
