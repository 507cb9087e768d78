# sessionward: `make run` starts the service, `make test` runs the whole test suite.
# Both set everything up first (a virtualenv in .venv, Python packages, and for tests Debian's chromium and
# redis-server when missing).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps bench-deps run test test-fast bench bench-full clean

$(STAMP): pyproject.toml
	@scripts/ensure-python.sh "$(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@touch $(STAMP)

setup: $(STAMP)

system-deps:
	@scripts/system-deps.sh

bench-deps:
	@scripts/bench-deps.sh

run: setup
	$(BIN)/sessionward serve $(ARGS)

test: setup system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not browser and not server" $(PYTEST_ARGS)

bench: setup bench-deps
	$(BIN)/python -m bench --quick

bench-full: setup bench-deps
	$(BIN)/python -m bench --full

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
