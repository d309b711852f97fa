# keyless: every command a person needs.
#   make demo   bootstrap if needed, then keyless demo: provision, deploy from a Bitbucket pipeline,
#               be refused from another repository and told why, all on the local stack
#   make dev    create .venv from requirements.lock (hash-pinned); quick when up to date
#   make test   bootstrap if needed, then lint (ruff), types (mypy --strict), the whole test suite on
#               the default Python, and the version-sensitive part on Python 3.10, 3.12 and 3.13
#               (each in its own .venv-X.Y from requirements.lock; a Python that is absent is
#               skipped with a loud message)
#   make dist   build the wheel and the sdist into dist/ (offline: the locked hatchling) and check
#               them with twine
#   make lint   ruff check + ruff format --check + mypy --strict
#   make readme refresh the --help blocks in README.md from the CLI
#   make bench  keyless deploy vs aws s3 sync vs rclone on a local S3 (BENCH_ARGS=--many: 20,000 files);
#               BENCH=matcher: IAM wildcard matching, old regex vs keyless' matcher
#               BENCH=startup: start-up of the light commands vs aws --version
#   make lock   re-resolve pyproject.toml into requirements.lock (needs network to the package index)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH ?= deploy

.PHONY: demo dev test lint lock readme clean bench dist test-versions

# The other CPythons keyless supports, found under pyenv's versions (CI and this machine have them).
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
OTHER_PYTHONS := 3.10 3.12 3.13
python_for = $(firstword $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python))
# The part of the suite that exercises version-specific code: keyless.compat (StrEnum, UTC,
# fromisoformat) and its users (trust evaluation of dates, tokens' time claims, CI providers,
# header dates, credentials' expiry), TLS on the local issuer (3.13 verifies certificates
# strictly), and the CLI's parser.
VERSION_TESTS := tests/unit/test_compat.py tests/unit/trust tests/unit/test_tokens.py \
	tests/unit/ci tests/unit/deploy/test_headers.py tests/unit/test_credentials.py \
	tests/unit/test_sts.py tests/unit/local/test_issuer.py tests/cli/test_main.py \
	tests/cli/test_trust.py

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

# Two workers: the suite is mostly waiting on local servers and child processes, and CI has 2 cores.
TEST_JOBS ?= 2

test: lint
	$(BIN)/pytest -q -n $(TEST_JOBS)
	$(MAKE) --no-print-directory test-versions

test-versions: $(addprefix test-,$(OTHER_PYTHONS))

test-%:
	@python="$(call python_for,$*)"; \
	if [ -z "$$python" ]; then \
		echo "*** SKIPPED: no CPython $* under $(PYENV_ROOT)/versions; its tests did not run ***"; \
	else \
		$(MAKE) --no-print-directory .venv-$*/.installed PYTHON_X="$$python" && \
		.venv-$*/bin/pytest -q -p no:cacheprovider $(VERSION_TESTS); \
	fi

.venv-%/.installed: $(STAMP) requirements.lock pyproject.toml
	@test -n "$(PYTHON_X)" || { echo "run: make test-$*"; exit 2; }
	@test -x .venv-$*/bin/python || $(PYTHON_X) -m venv --without-pip .venv-$*
	$(BIN)/uv pip install --quiet --python .venv-$*/bin/python --require-hashes --no-deps -r requirements.lock
	$(BIN)/uv pip install --quiet --python .venv-$*/bin/python --no-deps --no-build-isolation -e .
	@touch $@

dist: dev
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	$(BIN)/twine check --strict dist/*

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
	rm -rf $(VENV) .venv-3.* dist .mypy_cache .pytest_cache .ruff_cache
