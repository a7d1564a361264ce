"""Command-line plumbing of `scripts/run_glue.py` and `scripts/attack.py`: a `--help` a person can read, errors as
one line instead of a traceback, and the closing summary of a run (its main metrics and the paths it wrote).

`HfArgumentParser` lists every field of `TrainingArguments` (about 780 lines, the adversarial flags near the end, with
`(default: None)` for every default that depends on the method). `ScriptParser` shows the sections a script names,
in that order, with each `adv_*` field's effective default per method; the other Trainer flags are accepted but listed
only by `--help_all`, or, for a script that does not use them, refused.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from transformers import HfArgumentParser

from .adversarial_config import _DEFAULTS_HELP as DEFAULTS_HELP
from .cpu_ddp import end_process_group
from .defaults import DEFAULTS

__all__ = ["DEBUG_ENV", "ScriptParser", "field_names", "guarded", "run_summary"]

DEBUG_ENV = "ADV_TRAINER_DEBUG"
# Keys of `all_results.json` that are bookkeeping rather than results.
NOT_RESULTS = ("runtime", "per_second", "total_flos", "epoch", "samples")


def field_names(dataclass_type, exclude=()):
    """The init fields of `dataclass_type`, minus those of the classes in `exclude` (e.g. a parent dataclass)."""
    excluded = {f.name for parent in exclude for f in dataclasses.fields(parent)}
    return [f.name for f in dataclasses.fields(dataclass_type) if f.init and f.name not in excluded]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """One option string per flag (not `--adv_k ADV_K, --adv-k ADV_K`) and `(default: X)` only when X is a value."""

    def _format_action_invocation(self, action):
        # HfArgumentParser adds `--adv-k` beside `--adv_k`; one spelling is enough to read.
        names = ", ".join(s for s in action.option_strings if "-" not in s.lstrip("-"))
        if action.nargs == 0:
            return names
        return f"{names} {self._format_args(action, self._get_default_metavar_for_optional(action))}"

    def _get_default_metavar_for_optional(self, action):
        return "VALUE" if action.choices is None else "{" + ",".join(map(str, action.choices)) + "}"

    def _get_help_string(self, action):
        shown = action.default not in (None, "", argparse.SUPPRESS) and action.option_strings and action.nargs != 0
        return (
            f"{action.help} (default: {action.default})" if shown and "%(default)" not in action.help else action.help
        )


class _HelpAll(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.show_all()
        parser.print_help()
        parser.exit()


class ScriptParser(HfArgumentParser):
    """`HfArgumentParser` whose `--help` shows `sections` (title, field names) in order.

    The other fields are accepted and listed by `--help_all` (`refuse_others=False`), or refused with a one-line
    error naming the flag (`refuse_others=True`, for a script that does not use them).
    """

    def __init__(self, dataclass_types, prog, description, sections, refuse_others=False):
        config = "[CONFIG.yaml] " if not refuse_others else ""
        usage = f"{prog} {config}[--flag VALUE ...]    (--help for the flags)"
        super().__init__(dataclass_types, prog=prog, usage=usage, description=description)
        self.formatter_class = _HelpFormatter
        self._refuse_others = refuse_others
        by_dest = {}
        for action in self._actions:
            by_dest.setdefault(action.dest, []).append(action)
        others = self._optionals  # argparse's default group: every flag, until moved into a section
        sections_shown = []
        for title, names in sections:
            group = argparse._ArgumentGroup(self, title)
            for action in (action for name in names for action in by_dest.get(name, [])):
                others._group_actions.remove(action)
                group._group_actions.append(action)
                if action.dest.startswith("adv_") and action.default is None:
                    action.help = f"{action.help.replace(DEFAULTS_HELP, '').rstrip()} {effective_default(action.dest)}"
            sections_shown.append(group)
        # The sections first, then -h/--help and the flags that only --help_all lists.
        self._action_groups = [self._positionals, *sections_shown, others]
        others.title = "other flags"
        self._hidden = {action: action.help for action in others._group_actions if action.dest != "help"}
        for action in self._hidden:
            action.help = argparse.SUPPRESS
        if not refuse_others:
            others.add_argument("--help_all", action=_HelpAll, help="list every Trainer flag too, and exit")

    def show_all(self):
        for action, help_text in self._hidden.items():
            action.help = help_text

    def parse_known_args(self, args=None, namespace=None):
        if self._refuse_others:
            refused = {option for action in self._hidden for option in action.option_strings}
            given = [arg.split("=")[0] for arg in (sys.argv[1:] if args is None else args) if arg.startswith("--")]
            unused = [flag for flag in given if flag in refused]
            if unused:
                self.error(f"{', '.join(unused)}: not used by {self.prog} (see --help for the flags it takes)")
        namespace, remaining = super().parse_known_args(args, namespace)
        if remaining:
            self.error(f"unrecognized arguments: {' '.join(remaining)} (see --help)")
        return namespace, remaining


def effective_default(name):
    """The defaults of the `adv_*` field `name` per norm and scope, from `DEFAULTS`, as `--help` states them, e.g.
    "Default: l2: 0.02 (fgm, pgd), 0.05 (freelb, smart, creat), 0.001 (awp); linf: 0.001 (fgm, pgd, ...); ..."."""
    key = name.removeprefix("adv_")
    if key == "weight":
        others = [f"{method}: {values[key]}" for (method, _, _), values in DEFAULTS.items() if key in values]
        return f"Default: 1.0; {', '.join(others)}." if others else "Default: 1.0 for every method."
    parts = []
    for scope, norm in (("example", "l2"), ("example", "linf"), ("vocab", "l2"), ("vocab", "linf")):
        methods_by_value = {}
        for (method, row_scope, row_norm), values in DEFAULTS.items():
            if (row_scope, row_norm) == (scope, norm) and key in values:
                methods_by_value.setdefault(values[key], []).append(method)
        if methods_by_value:
            label = norm if scope == "example" else f"vocab scope {norm}"
            values = ", ".join(f"{value} ({', '.join(methods)})" for value, methods in methods_by_value.items())
            parts.append(f"{label}: {values}")
    return f"Default: {'; '.join(parts)}."


def guarded(main, prog, args=None):
    """Runs `main(args)` and exits: 0 on success, 1 with the error as one line on stderr (`--debug` or
    ADV_TRAINER_DEBUG=1 re-raises it with its traceback). A torch.distributed process group is ended in both cases,
    so that no process aborts at exit (see `cpu_ddp.end_process_group`)."""
    args = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    args = [arg for arg in args if arg != "--debug"]
    try:
        main(args)
    except Exception as error:
        end_process_group(wait=False)
        if debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        print(f"{prog}: (--debug or {DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)
    end_process_group()


def run_summary(output_dir, since, seconds=None):
    """The closing lines of a run: its results from `all_results.json` and what it wrote to `output_dir` since the
    time `since` (seconds since the epoch)."""
    output_dir = Path(output_dir)
    elapsed = time.time() - since if seconds is None else seconds
    lines = [f"Done in {elapsed:.0f} s."]
    results_path = output_dir / "all_results.json"
    if results_path.is_file() and results_path.stat().st_mtime >= since:
        results = json.loads(results_path.read_text())
        shown = {k: v for k, v in results.items() if not any(part in k for part in NOT_RESULTS)}
        if shown:
            lines.append("Results: " + ", ".join(f"{k} {_number(v)}" for k, v in shown.items()))
    written = sorted(p.name + ("/" if p.is_dir() else "") for p in output_dir.glob("*") if p.stat().st_mtime >= since)
    if written:
        lines.append(f"Wrote to {output_dir}/: {', '.join(written)}")
    return "\n".join(lines)


def _number(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)
