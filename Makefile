# The two commands a newcomer needs: `make dev` (local stack) and `make test` (everything CI runs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: dev test deps system-deps browser-deps infra-tools lint typecheck pytest bench clean openapi infra-docs client playground

$(STAMP): requirements.txt requirements-ops.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@# Compiled bytecode, as the container image has it (see DESIGN: cold start is a product metric).
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib shared ops functions emulator > /dev/null || true
	touch $@

# redis-server comes from Debian; Java 17 and the Firestore emulator come with the gcloud CLI.
system-deps:
	@command -v redis-server > /dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }

deps: system-deps $(STAMP)

# The browser tests drive Debian's Chromium with its ChromeDriver (same version, no download).
browser-deps:
	@command -v chromium > /dev/null && command -v chromedriver > /dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }

# The TypeScript client (types generated from docs/openapi.json) and the playground page that
# runs on it; Node.js 20+ and npm come with the machine.
CLIENT := clients/typescript
$(CLIENT)/node_modules/.installed: $(CLIENT)/package.json $(CLIENT)/package-lock.json
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2> /dev/null || \
		{ echo "Node.js 20 or newer (with npm) is needed for the client and the playground: https://nodejs.org" >&2; exit 1; }
	cd $(CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

client: $(CLIENT)/node_modules/.installed
	cd $(CLIENT) && npm run build --silent

playground: client
	$(CLIENT)/node_modules/.bin/tsc -p playground/tsconfig.json

# Offline Terraform checks (no registry is reachable): hclfmt built from Debian's Go sources, the
# google provider schema read from the cdktf wheel on PyPI, checkov in a venv of its own.
TOOLS   := .tools
HCLFMT  := $(TOOLS)/bin/hclfmt
SCHEMA  := $(TOOLS)/google-provider-6.50.0.json
CHECKOV := $(TOOLS)/checkov/bin/checkov

$(HCLFMT):
	@[ -d /usr/share/gocode/src/github.com/hashicorp/hcl/v2 ] && command -v go > /dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq golang-go golang-github-hashicorp-hcl-v2-dev; }
	mkdir -p $(TOOLS)/bin
	GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=$(CURDIR)/$(TOOLS)/gocache \
		go build -o $@ github.com/hashicorp/hcl/v2/cmd/hclfmt

$(SCHEMA): tests/infra/provider_schema.py | $(STAMP)
	$(BIN)/python -m tests.infra.provider_schema $@

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install -q --disable-pip-version-check checkov==3.3.30

infra-tools: $(HCLFMT) $(SCHEMA) $(CHECKOV)

dev: deps playground
	$(BIN)/agentctl stack up

test: deps browser-deps playground infra-tools lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench: deps
	@command -v wrk > /dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .stack test-artifacts \
		$(CLIENT)/node_modules $(CLIENT)/dist $(CLIENT)/src/generated playground/dist

infra-docs: $(STAMP)
	$(BIN)/python -m tests.infra.module_docs

openapi: $(STAMP)
	$(BIN)/python -m shared.openapi > docs/openapi.json
	$(BIN)/python -m shared.asyncapi > docs/asyncapi.json
