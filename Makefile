# The two commands a newcomer needs: `make dev` (local stack) and `make test` (everything CI runs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: dev test deps system-deps lint typecheck pytest bench clean openapi

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@# Compiled bytecode, as the container image has it (see DESIGN: cold start is a product metric).
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib shared functions emulator > /dev/null || true
	touch $@

# redis-server comes from Debian; Java 17 and the Firestore emulator come with the gcloud CLI.
system-deps:
	@command -v redis-server > /dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }

deps: system-deps $(STAMP)

dev: deps
	$(BIN)/agentctl stack up

test: deps lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench: deps
	@command -v wrk > /dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .stack

openapi: $(STAMP)
	$(BIN)/python -m shared.openapi > docs/openapi.json
