.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv with the `ticketing` command in .venv/bin/

run: $(STAMP) ## start the demo service on SQLite and print a token and a curl command
	$(BIN)/ticketing demo

test: $(STAMP) ## run the whole suite (PostgreSQL tests too when TICKETING_TEST_DATABASE_URL is set)
	$(BIN)/python -m pytest -q

lint: $(STAMP) ## ruff (format check and lint) and mypy
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP) ## create-ticket throughput vs pgbench on PostgreSQL (installs wrk if missing)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/create_bench.py

bench-list: $(STAMP) ## list/count latency with 1,000,000 tickets on PostgreSQL
	$(BIN)/python bench/list_bench.py

bench-rls: $(STAMP) ## create throughput with and without tenant row-level security
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/rls_bench.py

bench-sse: $(STAMP) ## 1,000 SSE streams on one process while creating 200 tickets/s (PostgreSQL)
	$(BIN)/python bench/sse_bench.py

clean: ## remove the virtualenv and the local data folder
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install run test lint format bench bench-list bench-rls bench-sse clean
