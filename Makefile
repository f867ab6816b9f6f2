# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# TORCH_SPEC picks the torch build: the CPU default below, or e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
# Optional, about 1 GB: only `make test-triton` installs it (a CUDA torch build brings its own).
TRITON_SPEC ?= triton==3.9.0
STAMP := $(VENV)/.speak-installed
export NUMBA_THREADING_LAYER ?= workqueue

.PHONY: demo test test-slow test-triton gpu-check bench bench-models clean default-tokenizer

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

# The fast suite (a few minutes on 2 cores); the slower end-to-end checks are `make test-slow`; CI runs both.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Every Triton kernel against its reference under Triton's interpreter (CPU tensors; on CUDA if there is one).
test-triton: $(STAMP)
	$(BIN)/python -c "import triton" 2>/dev/null || $(BIN)/python -m pip install -q "$(TRITON_SPEC)"
	TRITON_INTERPRET=1 SPEAK_REQUIRE_TRITON=1 $(BIN)/python -m pytest -q -rs tests/neuron/test_triton_interpret.py

# Ready to run unchanged on a GPU machine (at most 10 minutes); without CUDA: the CPU-side checks, one line, exit 0.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

bench: $(STAMP)
	$(BIN)/speak bench neuron

# SpikeGPT, SpikeLM and the Transformer at cpu-small, trained and evaluated in turns; prints the ratios.
bench-models: $(STAMP)
	$(BIN)/speak bench models

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

# The embedded default tokenizer (README, "The embedded default"): Stage-1 mimic of SentencePiece Unigram 8000.
# The shipped default: one tokenizer fitted on the train splits of the five shared corpora together (the standalone
# configuration, 1500 steps), mimicking one SentencePiece Unigram 8000 trained on their union; NOTICE names the
# sources and their licences (src/speak/data/README.md).
CORPORA ?= ../shared/corpora
default-tokenizer: $(STAMP)
	$(BIN)/python benchmarks/fit_per_language.py --corpora $(CORPORA) --multilingual --steps 1500 \
		--save runs/multilingual --json runs/multilingual/fit.json
	rm -rf src/speak/data/default_tokenizer
	cp -r runs/multilingual/multilingual-standalone src/speak/data/default_tokenizer
