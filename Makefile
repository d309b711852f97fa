# keyless: every command a person needs.
#   make demo   bootstrap if needed, then keyless demo: provision, deploy from a Bitbucket pipeline,
#               be refused from another repository and told why, all on the local stack
#   make dev    create .venv from requirements.lock (hash-pinned); quick when up to date
#   make test   bootstrap if needed, then lint (ruff), types (mypy --strict) and the whole test suite
#   make lint   ruff check + ruff format --check + mypy --strict
#   make readme refresh the --help blocks in README.md from the CLI
#   make bench  keyless deploy vs aws s3 sync vs rclone on a local S3 (BENCH_ARGS=--many: 20,000 files);
#               BENCH=matcher: IAM wildcard matching, old regex vs keyless' matcher
#   make lock   re-resolve pyproject.toml into requirements.lock (needs network to the package index)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH ?= deploy

.PHONY: demo dev test lint lock readme clean bench

dev: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: dev
	$(BIN)/keyless demo

lint: dev
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

readme: dev
	$(BIN)/python -m tools.readme_help

bench: dev
	$(BIN)/python -m bench.$(BENCH) $(BENCH_ARGS)

lock:
	@test -x $(BIN)/uv || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/python -m pip install --quiet uv; }
	$(BIN)/uv lock
	$(BIN)/uv export --format requirements-txt --all-groups --no-emit-project --no-header --quiet -o requirements.lock
	rm -f uv.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
