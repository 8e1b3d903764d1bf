.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
# Where `ticketing` keeps the SQLite database and the development signing key; the same rule
# as ticketing.config.default_data_dir.
DATA_DIR := $(or $(TICKETING_DATA_DIR),$(if $(filter /%,$(XDG_DATA_HOME)),$(XDG_DATA_HOME),$(HOME)/.local/share)/ticketing)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv with the `ticketing` command in .venv/bin/

run: $(STAMP) ## start the demo (SQLite, or TICKETING_DATABASE_URL) on PORT=8000, print exports, a token and a curl
	$(BIN)/ticketing demo --port $(PORT)

reset: ## empty the demo's SQLite database (stop `make run` first); the signing key stays
	rm -f "$(DATA_DIR)/ticketing.db" "$(DATA_DIR)/ticketing.db-wal" "$(DATA_DIR)/ticketing.db-shm"
	@$(if $(TICKETING_DATABASE_URL),echo "TICKETING_DATABASE_URL is set: that database is left as it is")

# The OpenID Connect provider of the portal's sign-in tests (oidc-provider, pinned by its lock file).
OIDC_PROVIDER := tests/oidc/node_modules/.package-lock.json

$(OIDC_PROVIDER): tests/oidc/package.json tests/oidc/package-lock.json
	npm ci --no-audit --no-fund --silent --prefix tests/oidc
	touch $@

browser-deps: $(OIDC_PROVIDER) ## Chromium (Debian's), axe-core and oidc-provider (npm) for the browser tests
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	test -f .cache/axe-core/node_modules/axe-core/axe.min.js || \
		npm install --no-audit --no-fund --silent --prefix .cache/axe-core 'axe-core@^4.10'

test: $(STAMP) browser-deps ## run the whole suite (PostgreSQL tests too when TICKETING_TEST_DATABASE_URL is set)
	$(BIN)/python -m pytest -q

lint: $(STAMP) ## ruff (format check and lint) and mypy
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

BENCH_ARGS ?=

bench: $(STAMP) ## create throughput vs pgbench, alternating, on a throwaway PostgreSQL (~7 min)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/create_bench.py $(BENCH_ARGS)

bench-soak: $(STAMP) ## 3 minutes of one tenant's creates, per-window throughput vs pgbench (~4 min)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/soak_bench.py $(BENCH_ARGS)

bench-list: $(STAMP) ## list/count latency with 1,000,000 tickets on a throwaway PostgreSQL
	$(BIN)/python bench/list_bench.py $(BENCH_ARGS)

bench-rls: $(STAMP) ## create throughput with and without tenant row-level security
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/rls_bench.py $(BENCH_ARGS)

bench-portal: $(STAMP) ## each portal page's server time with 100,000 tickets on PostgreSQL
	$(BIN)/python bench/portal_bench.py

screenshots: $(STAMP) browser-deps ## refresh docs/screenshots/ from the browser test (SQLite)
	TICKETING_PORTAL_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q \
		tests/test_portal_browser.py -k 'sqlite and (requester_files or without_a_reload or attaches)'

bench-sse: $(STAMP) ## 1,000 SSE streams on one process while creating 200 tickets/s (PostgreSQL)
	$(BIN)/python bench/sse_bench.py

clean: ## remove the virtualenv, the tool caches and the browser-test tools (`make reset` empties the demo database)
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache tests/oidc/node_modules

.PHONY: help install run reset test lint format bench bench-soak bench-list bench-rls bench-portal bench-sse browser-deps screenshots clean
