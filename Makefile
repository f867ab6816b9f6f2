# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# TORCH_SPEC picks the torch build: the CPU default below, or e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.speak-installed
export NUMBA_THREADING_LAYER ?= workqueue

.PHONY: demo test test-fast bench bench-models clean default-tokenizer

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	# spikingjelly's own dependency list would replace torch with a CUDA build.
	$(BIN)/python -m pip install -q --no-deps spikingjelly==2.0.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/speak demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/speak bench neuron

# SpikeGPT, SpikeLM and the Transformer at cpu-small, trained and evaluated in turns; prints the ratios.
bench-models: $(STAMP)
	$(BIN)/speak bench models

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

# The embedded default tokenizer (README, "The embedded default"): Stage-1 mimic of SentencePiece Unigram 8000.
default-tokenizer: $(STAMP)
	$(BIN)/speak fit-tokenizer --corpus embedded --exemplar sentencepiece:8000 --steps 1500 --seed 0 \
		--out src/speak/data/default_tokenizer
