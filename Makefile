# baocao: the single entry point. CI calls `make test` (see .ci/run).
PY := .venv/bin/python
PROFILE ?= dev
# test processes: each runs whole test files and starts its own Kafka and database
TEST_PROCESSES ?= 2

.PHONY: install run up down status test test-unit chaos lint bench clean

install:            ## Python deps, Kafka and mongo-java-server from Maven Central, promtool
	bash deploy/install.sh

run: install        ## Start Kafka, the database and the three services with the demo data
	$(PY) -m deploy.run up --demo --profile $(PROFILE)

up: install         ## The same without demo data
	$(PY) -m deploy.run up --profile $(PROFILE)

down:               ## Stop everything `make run` started (by pid)
	$(PY) -m deploy.run down --profile $(PROFILE)

status:
	$(PY) -m deploy.run status --profile $(PROFILE)

test: lint          ## Lint and types, then every suite: unit, contract, integration, end-to-end, short chaos
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile

test-unit: install  ## Only the tests that need no servers
	$(PY) -m pytest -m "not integration and not e2e and not chaos" tests/unit tests/contract

chaos: install      ## The long chaos run (more reports, more kills); prints what it checked
	BAOCAO_CHAOS_SCALE=long $(PY) -m pytest -m chaos -s tests/e2e/test_chaos.py

lint: install       ## ruff (lint and format) and mypy --strict (folders and settings in pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: install      ## Benchmarks against a local stack; prints figures and ratios
	$(PY) -m bench

clean: down
	rm -rf .run
