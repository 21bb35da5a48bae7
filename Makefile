# Two commands do all set-up: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PIP_INSTALL := $(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes
# One line instead of an obscure pip error when the interpreter is too old.
NEED_311 := import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
UV_VERSION := 0.13.9
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --quiet --custom-compile-command "make lock"

.PHONY: run install test lint bench doctor lock lock-check

$(BIN)/python:
	@$(PY) -c '$(NEED_311)' 2>/dev/null || { echo "error: Python 3.11 or newer is needed; $(PY) is $$($(PY) -V 2>&1 || echo missing). Run: make PY=python3.11 (or newer)"; exit 1; }
	$(PY) -m venv $(VENV)

# Reinstall only when a lock file changed, so repeated runs are quick.
# `make run` installs the runtime lock only; `make test` the development lock (runtime + tools).
$(STAMP): requirements.lock | $(BIN)/python
	@$(BIN)/python -c '$(NEED_311)' || { echo "error: $(VENV) uses Python $$($(BIN)/python -V 2>&1) but 3.11 or newer is needed; remove $(VENV) and run make PY=python3.11"; exit 1; }
	$(PIP_INSTALL) -r requirements.lock
	touch $(STAMP)

$(DEV_STAMP): requirements-dev.lock $(STAMP)
	$(PIP_INSTALL) -r requirements-dev.lock
	touch $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/python -m bot

# The runtime environment only (what the systemd unit runs; the Dockerfile installs the same lock).
install: $(STAMP)

doctor: $(STAMP)
	$(BIN)/python -m bot doctor

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Regenerate both locks from pyproject.toml (after adding a dependency there). Versions already
# pinned are kept unless pyproject.toml needs others; one universal lock covers Python 3.11-3.13
# (environment markers, e.g. audioop-lts on 3.13+). Needs PyPI.
lock: | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test $(LOCK_FLAGS) -c requirements.lock -o requirements-dev.lock
	$(MAKE) lock-check

# The development lock resolves for each supported Python (the resolver's target version).
lock-check: | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	for v in 3.11 3.12 3.13; do \
		$(BIN)/uv pip compile pyproject.toml --extra test --python-version $$v --quiet \
			-c requirements-dev.lock -o /dev/null || exit 1; echo "locks resolve for Python $$v"; \
	done

# The benchmark's extra pins (the zai-sdk baseline) go into the same .venv, on top of the others.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): requirements-bench.lock $(DEV_STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-bench.lock
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m tests.bench
