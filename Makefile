# speechgrpo: one entry point for setting up, running the demo, testing and benchmarking.
#   make demo   set up (venv, torch CPU wheel, the package with all extras, espeak-ng, WordNet) and run the demo
#   make test   set up, then ruff + mypy + pytest + the core-install check
# Override TORCH_SPEC (e.g. TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu')
# to choose the torch build for your machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?= -m "not slow"
BIN := $(VENV)/bin
STAMP := $(VENV)/.speechgrpo-setup

.PHONY: setup demo test lint typecheck pytest check-install test-all bench base clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned, so that no other package pulls a multi-GB build of its choice.
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	bash scripts/setup_system.sh $(BIN)/speechgrpo
	touch $(STAMP)

demo: setup
	$(BIN)/speechgrpo demo

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest $(PYTEST_ARGS)

# The wheel in a fresh venv with the core dependencies only: the CLI a `pip install speechgrpo` user gets.
check-install: setup
	$(BIN)/python scripts/check_core_install.py

test: lint typecheck pytest check-install

test-all: PYTEST_ARGS =
test-all: test

bench: setup
	$(BIN)/python benchmarks/speed.py

# Rebuild the bundled base model (about 70 minutes alone on 2 cores) and put it in the package.
BASE_DIR ?= build/demo_base
base: setup
	mkdir -p $(BASE_DIR)
	set -o pipefail; $(BIN)/speechgrpo build-base --no-progress output_dir=$(BASE_DIR) 2>&1 | tee $(BASE_DIR)/build.log
	rm -rf src/speechgrpo/models/bundled_base
	cp -r $(BASE_DIR)/model src/speechgrpo/models/bundled_base

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
