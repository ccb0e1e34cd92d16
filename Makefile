# ClaimLane. The README's two commands: `make run` and `make test`. Both create .venv.
PYTHON_BIN ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
PORT ?= 8000
CONFIG ?= training/configs/starter.toml

.PHONY: run test bench train lint clean

$(PY):
	$(PYTHON_BIN) -m venv $(VENV)

# Serving needs only onnxruntime, numpy and Pillow: no torch.
$(VENV)/.serve-installed: pyproject.toml | $(PY)
	$(PIP) -e .
	touch $@

# Tests, training and benchmarks: the train extra (torch==2.14.1, torchvision==0.29.1) and dev tools.
$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PIP) -e '.[train,dev]'
	touch $@ $(VENV)/.serve-installed

run: $(VENV)/.serve-installed
	$(VENV)/bin/claimlane serve --host 127.0.0.1 --port $(PORT)

test: $(VENV)/.dev-installed
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests were collected (exit 5)"; exit 0; fi; exit $$rc

bench: $(VENV)/.dev-installed
	$(PY) bench/bench_inference.py
	$(PY) bench/bench_claims.py

train: $(VENV)/.dev-installed
	$(PY) -m training.train --config $(CONFIG)

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
