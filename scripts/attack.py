#!/usr/bin/env python
"""Attack a fine-tuned model directory with the word-substitution attack (and, with --do_robust_eval, PGD on the
word-embedding output); writes `eval_results.json` and `attack_examples_<split>.txt`.

    python scripts/attack.py --model_name_or_path outputs/sst2_minilm_pgd_cpu --task_name sst2 \\
        --attack_max_examples 200 --do_robust_eval --robust_epsilons 0.05 0.1

It is `run_glue.py` with `--do_attack_eval` and no training, so it takes the same data and attack flags
(`--glue_dir`, `--validation_file`, `--max_eval_samples`, `--attack_max_queries`, ...). Results go to
`<model>/attack` unless `--output_dir` says otherwise.

`--do_advglue_eval` scores the model on AdvGLUE's human-checked adversarial examples instead (no GLUE dev data is
read); add `--do_attack_eval` to run the word-substitution attack as well.

    python scripts/attack.py --model_name_or_path outputs/sst2_minilm_pgd_cpu --task_name sst2 --do_advglue_eval
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_glue  # noqa: E402  (the script beside this one)


def main(args=None):
    args = list(sys.argv[1:] if args is None else args)
    if "--output_dir" not in args and "--model_name_or_path" in args:
        model = args[args.index("--model_name_or_path") + 1]
        args += ["--output_dir", str(Path(model) / "attack")]
    # AdvGLUE is itself an attack evaluation: asked for alone, it replaces the default word-substitution attack.
    default = [] if "--do_advglue_eval" in args else ["--do_attack_eval"]
    run_glue.main([*default, "--report_to", "none", *args])


if __name__ == "__main__":
    main()
