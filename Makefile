# Opsmeter — `make help` lists the targets. Needs only Python 3.11, gcc, git, Node.js and npm.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
WEB := services/console/web
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/scripts -type f 2>/dev/null) $(WEB)/index.html $(WEB)/vite.config.ts $(WEB)/tsconfig.json
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_LINK_MODE := copy

.PHONY: help install web run up down status sdk-ts test test-unit test-web test-integration test-containers lint typecheck bench chaos soak schemas prices clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==0.13.8

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml libs/*/src/*/*.c)
	$(UV) sync --frozen --all-packages
	@touch $@

$(WEB)/node_modules/.ci-stamp: $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB)/dist/index.html: $(WEB)/node_modules/.ci-stamp $(WEB_SOURCES)
	cd $(WEB) && npm run --silent build

install: $(VENV)/.synced $(WEB)/dist/index.html ## Create .venv and install every package, the broker and Redis binaries (uv, one lockfile); build the console (npm)

web: $(WEB)/dist/index.html ## Build the console's web app (npm ci, vite build; needs Node.js and npm)

run: install ## Run the whole stack in the foreground on the embedded local components (Ctrl-C stops it)
	$(VENV)/bin/opsmeter stack run

up: install ## Start the stack in the background; returns when every service is ready
	$(VENV)/bin/opsmeter stack up

down: install ## Stop the background stack in order (drain, commit, then the broker); leaves no process
	$(VENV)/bin/opsmeter stack down

status: install ## Show which parts of the background stack are running
	$(VENV)/bin/opsmeter stack status

sdk-ts: ## Install (npm ci, committed lockfile) and build the TypeScript SDK; needs Node 18+
	cd sdk/typescript && npm ci --no-audit --no-fund && npm run build

test: install sdk-ts ## Run every test: lint, types, unit, integration on the real local engines
	$(MAKE) --no-print-directory lint typecheck test-web
	OPSMETER_TEST_BACKEND=containers $(VENV)/bin/pytest -m integration -q -rfEs --no-header | tail -n 25
	$(VENV)/bin/pytest

test-unit: install ## Unit tests only (no broker, Redis or ClickHouse)
	$(VENV)/bin/pytest -m "not integration"

test-web: install ## The console's component tests (Vitest)
	cd $(WEB) && npx vitest run

test-containers: install ## The integration tests on testcontainers (needs a Docker engine; skipped without one)
	OPSMETER_TEST_BACKEND=containers $(VENV)/bin/pytest -m integration -rs

lint: install ## ruff check and format check; the console web app's ESLint (typescript-eslint strict, React hooks)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd $(WEB) && npx eslint --max-warnings=0 .

typecheck: install ## mypy --strict over every package
	$(VENV)/bin/mypy libs services tools tests bench sdk/python/src sdk/python/tests

bench: install ## Run every benchmark (bench/*_bench.py); each writes its section of docs/benchmarks.md
	@for script in bench/*_bench.py; do echo "== $$script"; $(VENV)/bin/python $$script --write docs/benchmarks.md || exit 1; done

chaos: install ## Run every fault scenario on a stack of its own under load, exact oracle; writes docs/reliability.md (~8 min here; CHAOS_ARGS=--long for the issue's sizes, ~25 min)
	$(VENV)/bin/python bench/chaos.py --write docs/reliability.md $(CHAOS_ARGS)

soak: install ## 30 minutes at half capacity: RSS growth of each service < 10 %, spool back to 0 (SOAK_ARGS=--minutes 2 for a short one)
	$(VENV)/bin/python bench/soak.py --write docs/reliability.md $(SOAK_ARGS)

schemas: install ## Regenerate the checked-in JSON Schemas of the event contracts
	$(VENV)/bin/python -m opsmeter_contracts.schemas --write

prices: install ## Re-snapshot the price catalog from the installed genai-prices package
	$(VENV)/bin/python -m opsmeter_pricing.snapshot --write

clean: ## Remove .venv, .tools and local data (.data)
	rm -rf $(VENV) $(TOOLS) .data .pytest_cache .mypy_cache .ruff_cache $(WEB)/node_modules $(WEB)/dist
