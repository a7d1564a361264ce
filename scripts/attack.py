#!/usr/bin/env python
"""Attack a fine-tuned model directory with word-level attacks (PWWS by default; `--attack_methods pwws deepwordbug`)
and, with --do_robust_eval, PGD on the word-embedding output; writes `eval_results.json`, the per-example
`attack_records_<method>_<split>.jsonl` and `attack_examples_<method>_<split>.txt`.

Examples:
    python scripts/attack.py --model_name_or_path outputs/sst2_minilm_pgd_cpu --task_name sst2 \\
        --attack_max_examples 200 --do_robust_eval --robust_epsilons 0.05 0.1
    python scripts/attack.py --model_name_or_path my_model --validation_file dev.csv --attack_max_examples 50

It is `run_glue.py` with `--do_attack_eval` and no training: it takes the model, evaluation data and attack flags
below, and refuses training flags. Results go to `<model>/attack` unless `--output_dir` says otherwise.

`--do_advglue_eval` scores the model on AdvGLUE's human-checked adversarial examples instead (no GLUE dev data is
read); add `--do_attack_eval` to run the word-level attacks as well:

    python scripts/attack.py --model_name_or_path outputs/sst2_minilm_pgd_cpu --task_name sst2 --do_advglue_eval
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_glue  # noqa: E402  (the script beside this one)

from adv_trainer import AdversarialTrainingArguments  # noqa: E402
from adv_trainer.cli import ScriptParser, field_names, guarded  # noqa: E402
from adv_trainer.robustness.arguments import RobustnessArguments  # noqa: E402

MODEL_FLAGS = ["model_name_or_path", "tokenizer_name", "cache_dir", "model_revision", "token", "trust_remote_code"]
DATA_FLAGS = ["task_name", "glue_dir", "validation_file", "max_eval_samples", "max_seq_length", "pad_to_max_length"]
RUN_FLAGS = ["output_dir", "per_device_eval_batch_size", "seed", "use_cpu", "disable_tqdm"]


def build_parser():
    parser = ScriptParser(
        (run_glue.ModelArguments, run_glue.DataTrainingArguments, AdversarialTrainingArguments, RobustnessArguments),
        prog="attack.py",
        description=__doc__,
        sections=[
            ("model", MODEL_FLAGS),
            ("evaluation data", DATA_FLAGS),
            ("attacks", field_names(RobustnessArguments)),
            ("run", RUN_FLAGS),
        ],
        refuse_others=True,
    )
    parser.set_defaults(do_attack_eval=True, report_to="none")
    return parser


def main(args=None):
    args = list(sys.argv[1:] if args is None else args)
    if "--output_dir" not in args and "--model_name_or_path" in args:
        model = args[args.index("--model_name_or_path") + 1]
        args += ["--output_dir", str(Path(model) / "attack")]
    # AdvGLUE is itself an attack evaluation: asked for alone, it replaces the default word-level attack.
    if "--do_advglue_eval" in args and "--do_attack_eval" not in args:
        args += ["--do_attack_eval", "false"]
    run_glue.main(args, build_parser())


if __name__ == "__main__":
    guarded(main, "attack.py")
