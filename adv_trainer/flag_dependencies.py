"""Flags of the scripts that act only under another setting: given while that setting rules them out, they are
named in a warning together with the setting and where it came from, instead of being silently ignored.

`run_glue.py configs/sst2_minilm_cpu.yaml --save_steps 2` writes no checkpoint, since the config says
`save_strategy: "no"`; the Trainer says nothing about it. Each rule below is one such dependency.
"""

import warnings
from dataclasses import dataclass

__all__ = ["DEPENDENCIES", "Dependency", "warn_ineffective_flags"]


@dataclass(frozen=True)
class Dependency:
    flag: str  # the flag that may be ignored
    setting: str  # the setting it depends on
    acts: tuple  # the values of `setting` under which `flag` takes effect (for a list setting: one of them in it)
    fix: str  # how to make it take effect


def _strategy(flag, setting, acts=("steps",)):
    return Dependency(flag, setting, acts, f"`--{setting} {acts[0]}`")


def _needs(flags, setting):
    return [Dependency(flag, setting, (True,), f"`--{setting}`") for flag in flags]


DEPENDENCIES = [
    _strategy("save_steps", "save_strategy"),
    _strategy("save_total_limit", "save_strategy", ("steps", "epoch", "best")),
    _strategy("eval_steps", "eval_strategy"),
    _strategy("logging_steps", "logging_strategy"),
    *_needs(["max_train_samples", "resume_from_checkpoint"], "do_train"),
    *_needs(["max_predict_samples"], "do_predict"),
    *_needs(["robust_epsilons", "robust_steps", "robust_norm"], "do_robust_eval"),
    *_needs(["attack_methods", "attack_max_examples", "attack_max_words_fraction", "attack_max_queries",
             "attack_max_edit_distance", "attack_neighbours"], "do_attack_eval"),
    *[Dependency(flag, "attack_methods", (method,), f"`--attack_methods {method}`")
      for flag, method in (("attack_neighbours", "embedding_neighbour"), ("attack_max_edit_distance", "deepwordbug"))],
]  # fmt: skip


def warn_ineffective_flags(arguments, sources):
    """Warns once for every flag in `sources` that a `DEPENDENCIES` rule says has no effect under `arguments`.

    Args:
        arguments: the parsed dataclasses (model, data, training, robustness), searched for each name.
        sources: {flag name: where it was given, e.g. "the command line" or "configs/x.yaml"}: the flags the user
            set, as opposed to their defaults.
    """
    values = {}
    for parsed in arguments:
        values.update(vars(parsed))
    for rule in DEPENDENCIES:
        if rule.flag not in sources or rule.setting not in values:
            continue
        setting = getattr(values[rule.setting], "value", values[rule.setting])  # an enum's string
        if any(value in rule.acts for value in setting) if isinstance(setting, list) else setting in rule.acts:
            continue
        origin = f"from {sources[rule.setting]}" if rule.setting in sources else "its default"
        value = values[rule.flag]
        value = f"{value:g}" if isinstance(value, float) else value  # save_steps 2, stored as 2.0
        warnings.warn(
            f"`{rule.flag}={value}` (from {sources[rule.flag]}) has no effect: `{rule.setting}` is "
            f"{setting!r} ({origin}). Pass {rule.fix} to use it.",
            stacklevel=2,
        )
