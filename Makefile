# Two entry points: `make run` (install, then serve config.yml) and `make test` (install
# everything the suite needs, then run lint, format check, types and the whole test suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Every Python file of the repository is linted and format-checked.
PY_DIRS := src tests bench grafana

.PHONY: run test lint system-deps clean

run: $(VENV)/.installed
	$(BIN)/sonde-exporter --config.file config.yml

test: lint system-deps
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy

system-deps:
	bash .ci/install-system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
