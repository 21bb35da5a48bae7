# Two commands do all set-up: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench doctor

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall only when the lock file changed, so repeated runs are quick.
$(STAMP): requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot

doctor: $(STAMP)
	$(BIN)/python -m bot doctor

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The benchmark's extra pins (the zai-sdk baseline) go into the same .venv, on top of the others.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): requirements-bench.lock $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-bench.lock
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m tests.bench
