# ClaimLane. The README's two commands: `make run` and `make test`. Both create .venv.
PYTHON_BIN ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Every install takes the tested versions of constraints.txt (how to update it: its header).
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
PORT ?= 8000
CONFIG ?= training/configs/starter.toml

.PHONY: run test bench chaos train train-v1 lint clean chromium blender services

$(PY):
	$(PYTHON_BIN) -m venv $(VENV)

# Serving needs only onnxruntime, numpy and Pillow: no torch.
$(VENV)/.serve-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e .
	touch $@

# Tests, training and benchmarks: the train extra (torch==2.14.1, torchvision==0.29.1) and dev tools.
$(VENV)/.dev-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[train,dev]'
	touch $@ $(VENV)/.serve-installed

run: $(VENV)/.serve-installed
	$(VENV)/bin/claimlane serve --host 127.0.0.1 --port $(PORT)

# The real services the tests talk to, started when they are installed but down. Tests that need
# one that is still unreachable skip with the reason (and fail under CI=true).
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { command -v pg_ctlcluster >/dev/null && \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; } || \
		echo "warning: PostgreSQL is not running on 127.0.0.1:5432"
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { command -v redis-server >/dev/null && \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null; } || \
		echo "warning: Redis is not running on 127.0.0.1:6379"

# The console's browser test drives Debian's Chromium (never a downloaded browser; CI runs as root).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# 3D parcel renders for training (training/synthetic/render3d.py) use Debian's Blender (3.4, Cycles on the
# CPU), installed the same way; where it cannot be, the render tests skip and say so.
blender:
	@command -v blender >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq blender >/dev/null) || \
		echo "warning: Blender is not installed: 3D render tests skip, and a training config with renders stops"

test: $(VENV)/.dev-installed services chromium blender
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests were collected (exit 5)"; exit 0; fi; exit $$rc

bench: $(VENV)/.dev-installed
	$(PY) bench/bench_inference.py
	$(PY) bench/bench_claims.py
	$(PY) bench/bench_photo_index.py

# Hostile input and sudden death, with a table (bench/chaos.py): 20,000 fuzzed requests on SQLite and
# on PostgreSQL, hostile photos and the API's peak memory, a worker and an API killed mid-work.
chaos: $(VENV)/.dev-installed services
	$(PY) bench/chaos.py

# The bundled model (v2): real by-eye grades, photo gate, certified fast-lane thresholds. Photos of
# training/data/sources.csv are used when rebuilt under runs/sources (python -m training.sources).
train: $(VENV)/.dev-installed
	$(PY) -m training.grading train --recipe lite2-224

# The v1 recipe (end-to-end fine-tuning with synthetic and rendered parcels).
train-v1: $(VENV)/.dev-installed blender
	$(PY) -m training.train --config $(CONFIG)

# The checks CI runs before the tests (.ci/run): lint, format, types.
lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
