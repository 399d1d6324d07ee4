# Shouwang: the two commands are `make dev` and `make test`. Each installs what it needs.
SHELL := /bin/bash
UV_VERSION := 0.11.33
export UV_PYTHON_DOWNLOADS := never
# the interpreter itself, not a pyenv shim: uv compares the venv's interpreter with this path and recreated .venv
# on every make when they differed (breaking whatever else was running from it)
export UV_PYTHON := $(shell python3.11 -c 'import sys; print(sys.executable)' 2>/dev/null || command -v python3)
PY := $(UV_PYTHON)
UV := $(PY) -m uv
PYTEST_ARGS ?=

.PHONY: install dev infra test bench chaos fuzz lint clean console-assets contract

install: ## create .venv from the lock file and fetch the Kafka jars (cached)
	@$(UV) --version >/dev/null 2>&1 || $(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet
	@$(UV) run --frozen python -c "from shouwang_dev.stack.infra import ensure_kafka_libs; ensure_kafka_libs()"
	@bash tools/deploy/install_tools.sh
	@bash tools/install_browser.sh

dev: install ## PostgreSQL + Kafka + the six services + demo county; Ctrl-C stops everything
	$(UV) run --frozen python -m shouwang_dev.stack dev

infra: install ## only PostgreSQL + Kafka on fixed ports (tests reuse them via .local/infra/stack.env)
	$(UV) run --frozen python -m shouwang_dev.stack infra --state .local/infra

test: install ## the whole test suite against a real PostgreSQL and a real Kafka
	$(UV) run --frozen pytest $(PYTEST_ARGS)

bench: install ## benchmarks -> bench/results/latest.json
	$(UV) run --frozen python -m bench.run $(BENCH_ARGS)

chaos: install ## long fault-injection run -> bench/results/chaos.json
	$(UV) run --frozen python -m bench.chaos $(CHAOS_ARGS)

fuzz: install ## schemathesis against every service's OpenAPI -> zero 5xx
	$(UV) run --frozen pytest tests/fuzz tests/gateway/test_fuzz.py -m fuzz $(PYTEST_ARGS)

contract: install ## regenerate the gateway's public OpenAPI document from the services' own (tools/contract.py)
	$(UV) run --frozen python tools/contract.py

console-assets: install ## re-vendor Swagger UI, htmx, Alpine.js and axe-core from the versions package-lock.json pins
	npm ci --no-audit --no-fund --silent
	$(UV) run --frozen python tools/console_assets.py

lint: install ## no service imports another (tools/check_imports.py), no source file over 800 lines (tools/check_sizes.py), and ruff
	$(UV) run --frozen python tools/check_imports.py
	$(UV) run --frozen python tools/check_sizes.py
	$(UV) run --frozen ruff check .

clean:
	rm -rf .venv .local
