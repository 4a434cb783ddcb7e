# The commands the README quotes. Everything installs into .venv through constraints.txt,
# which pins torch==2.13.0 (an unpinned torch pulls gigabytes of CUDA wheels).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install demo demo-quick test test-all lint bench

$(BIN)/medcl: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

install: $(BIN)/medcl

demo: install           ## random vs SimCLR vs UFC on dsb2018 nuclei, 3 seeds (about 11 min on 2 cores)
	$(BIN)/medcl demo

demo-quick: install     ## one seed, short schedules (about 1.5 min)
	$(BIN)/medcl demo --quick --out runs/demo-quick

test: install           ## the test suite (slow tests skipped)
	$(BIN)/python -m pytest

test-all: install       ## including tests marked slow
	$(BIN)/python -m pytest -m ""

lint: install
	$(BIN)/ruff check medcl tests benchmarks scripts
	$(BIN)/ruff format --check medcl tests benchmarks scripts
	$(BIN)/mypy

bench: install          ## clustering benchmark (45k and 1M points)
	$(BIN)/python benchmarks/bench_cluster.py
