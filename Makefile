# Itinera: `make run` starts everything locally, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := -e 'libs/common[local]' $(foreach s,$(wildcard services/*),-e $(s))
STAMP := $(VENV)/.installed
ASYNCAPI_SPECS_VERSION := 6.11.1

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): constraints.txt $(wildcard libs/common/pyproject.toml services/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt hatchling editables
	$(BIN)/python -m pip install --quiet --no-build-isolation -c constraints.txt $(PACKAGES) -r requirements-dev.txt
	# The official AsyncAPI JSON Schema the contract tests check schemas/asyncapi.yaml against.
	if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund --no-package-lock --no-save \
		--prefix .cache/asyncapi-specs @asyncapi/specs@$(ASYNCAPI_SPECS_VERSION); fi
	touch $(STAMP)

install: $(STAMP) ## create .venv and install every package (pinned by constraints.txt)

run: install ## start broker, database and every service, print URLs and a token (Ctrl-C stops)
	$(BIN)/itinera run

test: install ## run every test against a real broker and database
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy --strict
	$(BIN)/mypy libs/common/src services/*/src libs/common/tests services/*/tests tests benchmarks

check: lint typecheck test ## lint, types and tests

bench-ingest: install ## measure ingestion throughput against raw Kafka production
	$(BIN)/python benchmarks/ingest.py $(BENCH_ARGS)

bench-profile: install ## measure the profile service: events applied per second, read latency
	$(BIN)/python benchmarks/profile.py $(BENCH_ARGS)

bench-floor: install ## measure the least a consumer of events costs here: Kafka in, PostgreSQL and an outbox, Kafka out
	$(BIN)/python benchmarks/floor.py $(BENCH_ARGS)

bench-broker: install ## measure the local broker's cost as it fills (Tansu's memory storage)
	$(BIN)/python benchmarks/broker.py $(BENCH_ARGS)

bench-segmentation: install ## measure streaming qualification: event to audience entry latency
	$(BIN)/python benchmarks/segmentation.py $(BENCH_ARGS)

bench-journeys: install ## measure the journey runtime: event to message request, entries/s, timers firing
	$(BIN)/python benchmarks/journeys.py $(BENCH_ARGS)

bench-channels: install ## measure the channels service: emails/s to the SMTP sink, render p99, event to email
	$(BIN)/python benchmarks/channels.py $(BENCH_ARGS)

token: install ## print a development bearer token
	@$(BIN)/itinera token

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) .stack .cache

.PHONY: help install run test lint typecheck check bench-ingest bench-profile bench-floor bench-broker bench-segmentation bench-journeys bench-channels token clean
