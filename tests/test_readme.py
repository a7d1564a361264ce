"""The examples of the README and of the docs pages cannot drift: the blocks marked `<!-- readme-test: run -->` run
as written (offline, on the CPU, a few dozen rows), those marked `<!-- readme-test: run after the previous -->` after
the block they continue (the README first, then the docs pages in name order), every other `scripts/run_glue.py` or
`scripts/attack.py` command is parsed (config loaded, flags checked, nothing run), every `make` target exists, and
every Python block compiles. The recipes' blocks (TRL, PEFT, ...) are run by their own tests (`run_readme_example`)."""

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import attack, run_glue
from tests.glue_files import shared_glue

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TEXT = {page.relative_to(ROOT).as_posix(): page.read_text(encoding="utf-8") for page in PAGES}
# `run`: the block runs as written; `run after the previous`: it runs after the previous marked block, in the same
# script (it continues that example).
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<mark>run|run after the previous) -->\n)?```(?P<language>\w+)\n(?P<code>.*?)```", re.S
)
BLOCKS = [
    (match["language"], match["code"], match["mark"]) for text in TEXT.values() for match in BLOCK.finditer(text)
]
# The README's paths assume `../shared/glue` beside the repository; the tests use wherever the data is.
README_GLUE_DIR = "../shared/glue"


def commands(code):
    """The shell commands of a bash block: continuation lines joined, comments dropped, `a && b` as two commands, as
    argument lists."""
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        while "&&" in tokens:
            found.append(tokens[: tokens.index("&&")])
            tokens = tokens[tokens.index("&&") + 1 :]
        found += [tokens] if tokens else []
    return found


def script_arguments(command):
    """(script name, its arguments) for a command that runs scripts/run_glue.py or scripts/attack.py, else None."""
    for position, token in enumerate(command):
        if token in ("scripts/run_glue.py", "scripts/attack.py"):
            return Path(token).name, command[position + 1 :]
    return None


RUN_BASH = [command for language, code, run in BLOCKS if run and language == "bash" for command in commands(code)]
RUN_PYTHON = [(code, run) for language, code, run in BLOCKS if run and language == "python"]
OTHER_BASH = [
    command for language, code, run in BLOCKS if not run and language == "bash" for command in commands(code)
]
PARSED = [command for command in OTHER_BASH if script_arguments(command)]
MAKE = [command for command in OTHER_BASH if command[0] == "make"]


def test_the_pages_mark_a_command_and_a_python_example_to_run():
    assert len(RUN_BASH) == 1
    # The README's Use example; docs/defaults.md's hyperparameter search, which continues it.
    assert [run for _, run in RUN_PYTHON] == ["run", "run after the previous"]
    assert "<!-- readme-test: run after the previous -->" in TEXT["docs/defaults.md"]
    assert len(PARSED) >= 5 and len(MAKE) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("command", RUN_BASH, ids=lambda command: " ".join(command[:3]))
def test_marked_commands_run_as_written(command, tmp_path):
    assert command[0] == ".venv/bin/python"  # run here with the interpreter of the tests
    env = {**os.environ, "GLUE_DIR": str(shared_glue()), "HF_HUB_OFFLINE": "1"}
    run = [sys.executable, *command[1:], "--output_dir", str(tmp_path), "--report_to", "none"]
    completed = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    logs = adversarial_log_lines(completed.stdout)
    assert len(logs) == 3  # 48 rows, batch 16: every step logs its adversarial metrics
    results = json.loads((tmp_path / "all_results.json").read_text())
    assert results["train_samples"] == 48 and results["eval_samples"] == 48
    summary = completed.stdout.splitlines()[-3:]
    assert summary[0].startswith("Done in") and f"eval_accuracy {results['eval_accuracy']:.4g}" in summary[1]
    assert summary[2].startswith(f"Wrote to {tmp_path}/:") and "model.safetensors" in summary[2]


def run_example(code, tmp_path):
    """stdout of `code` run as a script in `tmp_path`, offline, with the README's GLUE path pointing at the data."""
    script = tmp_path / "example.py"
    script.write_text(code.replace(README_GLUE_DIR, str(shared_glue())))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def adversarial_log_lines(stdout):
    """The Trainer's log lines that carry the adversarial metrics."""
    return [line for line in stdout.splitlines() if "'adv_loss'" in line and "'adv_delta_norm'" in line]


@pytest.mark.slow
def test_the_use_example_runs_as_written(tmp_path):
    (code, _) = RUN_PYTHON[0]
    stdout = run_example(code, tmp_path)
    assert len(adversarial_log_lines(stdout)) == 4  # 64 rows, batch 16, logging_steps=1
    assert "'eval_accuracy'" in stdout.splitlines()[-1]


@pytest.mark.slow
def test_the_hyperparameter_search_example_runs_after_it(tmp_path):
    (use, _), (search, _) = RUN_PYTHON
    # The search range as the page writes it, so that the bounds checked below follow the example when it changes.
    low, high = map(float, re.search(r'suggest_float\("adv_epsilon", ([\d.e-]+), ([\d.e-]+)', search).groups())
    stdout = run_example(use + "\n\n" + search, tmp_path)
    logs = [ast.literal_eval(line) for line in adversarial_log_lines(stdout)]
    assert len(logs) == 4 * 4  # the example's run, then 3 trials of 4 steps
    # Each trial trains at its own ε: PGD's three steps of 0.3 ε each give a norm of at most 0.9 ε, so the trials'
    # largest norms differ, and none exceeds 0.9 times the top of the search range.
    largest = [max(float(log["adv_delta_norm"]) for log in logs[start : start + 4]) for start in (4, 8, 12)]
    assert len(set(largest)) == 3 and max(largest) <= 0.9 * high + 1e-6
    hyperparameters, objective = stdout.splitlines()[-1].split("} ")
    assert low <= ast.literal_eval(hyperparameters + "}")["adv_epsilon"] <= high
    assert 0.0 <= float(objective) <= 1.0


@pytest.mark.parametrize("command", PARSED, ids=lambda command: " ".join(command)[:80])
def test_other_script_commands_parse(command, tmp_path):
    script, args = script_arguments(command)
    if "--help" in args:
        return
    if script == "attack.py":
        attack.build_parser().parse_args_into_dataclasses(args)
    else:
        run_glue.parse_arguments(args)


@pytest.mark.parametrize("command", MAKE, ids=lambda command: " ".join(command))
def test_make_targets_exist(command):
    completed = subprocess.run(["make", "-n", *command[1:]], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize("index", range(sum(language == "python" for language, _, _ in BLOCKS)))
def test_python_blocks_compile(index):
    code = [code for language, code, _ in BLOCKS if language == "python"][index]
    compile(code, f"python block {index}", "exec")


def test_the_docs_site_builds_strictly(tmp_path):
    """`make docs`: a broken link, a missing page of the nav or a docstring reference that does not resolve fails."""
    pytest.importorskip("mkdocs", reason="the docs tools are in the `docs` extra: pip install -e .[docs]")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Quick start" in (tmp_path / "site" / "index.html").read_text()  # the README's, included
    assert "evaluate_robustness" in (tmp_path / "site" / "api" / "index.html").read_text()
