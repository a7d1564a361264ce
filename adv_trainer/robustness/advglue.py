"""AdvGLUE: accuracy of a sequence classifier on textual adversarial examples, per attack level and per method.

AdvGLUE (Wang et al., "Adversarial GLUE: A Multi-Task Benchmark for Robustness Evaluation of Language Models",
NeurIPS 2021 Datasets and Benchmarks, https://arxiv.org/abs/2111.02840) attacked GLUE dev examples with 14 methods
and kept an example only if annotators agreed its label still holds. Its file (`dev_ann.json` of the benchmark's
repository) has one key per task, each a list of examples with the task's text fields, `idx`, `label` (GLUE's hub
label ids), `data_construction` (the attack level: word, sentence or human), `method`, and `original_<field>` for
each text field the attack changed. An example's benign original is the example with those fields substituted.

Metrics, in the `eval_*` family (fractions in [0, 1]; `prefix` replaces `eval`):
- `eval_advglue_accuracy` on all adversarial examples (`eval_advglue_examples` of them);
- `eval_advglue_benign_accuracy` and `eval_advglue_paired_adversarial_accuracy` on the `eval_advglue_paired_examples`
  that have an original, and `eval_advglue_accuracy_drop`, their difference (benign minus adversarial);
- `eval_advglue_accuracy_<level>` and `eval_advglue_examples_<level>` per attack level present;
- `eval_advglue_accuracy_method_<method>` and `..._examples_method_<method>` per method, pooled over levels, its
  name lower-cased with other characters than letters and digits replaced by `_` (`BERT-ATTACK` -> `bert_attack`).

The model's outputs are mapped to AdvGLUE's label ids by the names in `config.id2label` (an MNLI model with
contradiction first is scored right); generic names (`LABEL_0`, ...) or other names are refused unless
`label_names` says which task label each output predicts.
"""

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset

from ..glue.tasks import get_task

__all__ = [
    "ADVGLUE_TASKS",
    "ATTACK_LEVELS",
    "AdvGlueEvaluation",
    "AdvGlueExample",
    "advglue_metrics",
    "advglue_tasks_for",
    "evaluate_advglue",
    "evaluate_advglue_with_trainer",
    "label_mapping",
    "load_advglue",
    "normalise_label_name",
    "write_records",
]

# AdvGLUE key -> the GLUE task whose text fields and label names it has.
ADVGLUE_TASKS = {"sst2": "sst2", "qqp": "qqp", "mnli": "mnli", "mnli-mm": "mnli", "qnli": "qnli", "rte": "rte"}
ATTACK_LEVELS = ("word", "sentence", "human")
GLUE_TO_ADVGLUE = {"sst2": ("sst2",), "qqp": ("qqp",), "mnli": ("mnli", "mnli-mm"), "qnli": ("qnli",), "rte": ("rte",)}


@dataclass(frozen=True)
class AdvGlueExample:
    """One AdvGLUE example: `texts` in the GLUE task's column order; `original_texts` with each `original_<field>`
    substituted, or None when the attack changed no field (most human-written examples)."""

    idx: int
    label: int
    texts: tuple[str, ...]
    original_texts: tuple[str, ...] | None
    level: str
    method: str


@dataclass
class AdvGlueEvaluation:
    """`metrics` as in the module docstring; `records`, one per example in file order: `idx`, `label`,
    `prediction`, `original_prediction` (None without an original), `level`, `method` (label ids are AdvGLUE's)."""

    metrics: dict
    records: list[dict]


def advglue_tasks_for(glue_task):
    """The AdvGLUE keys that evaluate a model fine-tuned on GLUE task `glue_task`: MNLI has matched and mismatched."""
    if glue_task not in GLUE_TO_ADVGLUE:
        raise ValueError(
            f"AdvGLUE has no task {glue_task!r}; it has {sorted(GLUE_TO_ADVGLUE)} (mnli: matched and mismatched). "
            "Evaluate on AdvGLUE a model fine-tuned on one of those, or drop `--do_advglue_eval`."
        )
    return GLUE_TO_ADVGLUE[glue_task]


def load_advglue(path, task):
    """The examples of AdvGLUE task `task` (a key of `ADVGLUE_TASKS`) in the file at `path`, checked.

    Raises ValueError for an unknown task, a missing file or task key, a missing or non-text field, a label outside
    the task's ids, an unknown attack level, an `original_<field>` that is not a text field, or a repeated `idx`."""
    if task not in ADVGLUE_TASKS:
        raise ValueError(f"AdvGLUE has no task {task!r}; its tasks are {sorted(ADVGLUE_TASKS)}.")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"The AdvGLUE file {path} does not exist; pass the path of its dev.json (`--advglue_file`).")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or task not in data:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} has no task {task!r} (its keys: {keys}); use an AdvGLUE file that has it.")
    glue_task = get_task(ADVGLUE_TASKS[task])
    fields = glue_task.text_columns
    examples, seen = [], set()
    for position, raw in enumerate(data[task]):
        where = f"{path}, task {task!r}, example {position}"
        missing = [key for key in ("idx", "label", "data_construction", "method", *fields) if key not in raw]
        if missing:
            raise ValueError(f"{where} lacks the field(s) {missing}; an AdvGLUE {task} example has {list(fields)}.")
        unknown = sorted(k for k in raw if k.startswith("original_") and k.removeprefix("original_") not in fields)
        if unknown:
            raise ValueError(f"{where} has {unknown}, but {task}'s text fields are {list(fields)}.")
        texts = [raw[field] for field in fields] + [v for k, v in raw.items() if k.startswith("original_")]
        if not all(isinstance(text, str) for text in texts):
            raise ValueError(f"{where}: every text field must be a string, got {texts}.")
        label = raw["label"]
        if type(label) is not int or not 0 <= label < glue_task.num_labels:
            raise ValueError(
                f"{where} has label {label!r}; {task}'s labels are the ids 0..{glue_task.num_labels - 1} "
                f"({', '.join(glue_task.label_names)}), GLUE's hub label ids; fix the file's labels."
            )
        if raw["data_construction"] not in ATTACK_LEVELS:
            raise ValueError(
                f"{where} has `data_construction` {raw['data_construction']!r}, not one of {ATTACK_LEVELS}."
            )
        if raw["idx"] in seen:
            raise ValueError(f"{where} repeats idx {raw['idx']!r}; examples are paired across runs by idx.")
        seen.add(raw["idx"])
        has_original = any(f"original_{field}" in raw for field in fields)
        originals = tuple(raw.get(f"original_{field}", raw[field]) for field in fields) if has_original else None
        examples.append(
            AdvGlueExample(raw["idx"], label, tuple(raw[f] for f in fields), originals, raw["data_construction"],
                           str(raw["method"]))
        )  # fmt: skip
    if not examples:
        raise ValueError(f"{path} has no examples for task {task!r}.")
    return examples


def normalise_label_name(name):
    """`CONTRADICTION`, `Not Entailment`, `not-entailment` -> `contradiction`, `not_entailment`: lower case, every run
    of characters other than letters and digits as one `_`."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def label_mapping(id2label, task, label_names=None):
    """The AdvGLUE label id each model output predicts, shape (num_outputs,), matched by name.

    `id2label` is the model's `config.id2label`; `label_names`, if given, replaces it: the task's label name of each
    output in output order. Names are compared lower-cased with spaces and dashes as `_` (`CONTRADICTION` matches
    `contradiction`). Raises ValueError when the names are generic (`LABEL_0`: which output is which cannot be
    checked), are not the task's, or their number differs from the task's."""
    expected = get_task(ADVGLUE_TASKS[task]).label_names
    if label_names is not None:
        names, source = list(label_names), "`label_names`"
    else:
        names, source = [id2label[i] for i in sorted(int(i) for i in id2label)], "The model's `config.id2label`"
    normalised = [normalise_label_name(name) for name in names]
    fix = (
        f"Pass `label_names` with the {task} label of each model output in output order (e.g. {list(expected)}), or "
        "set `model.config.id2label` to them (run_glue.py sets it from the GLUE task when it trains)."
    )
    if all(re.fullmatch(r"label_\d+", name) for name in normalised) and label_names is None:
        raise ValueError(
            f"{source} is {names}: generic names that do not say which output predicts which of {task}'s labels "
            f"{list(expected)}. {fix}"
        )
    if sorted(normalised) != sorted(expected):
        raise ValueError(
            f"{source} names the outputs {names}, but AdvGLUE {task}'s labels are {list(expected)}. {fix}"
        )
    return np.array([expected.index(name) for name in normalised])


def advglue_metrics(examples, predictions, original_predictions, prefix="eval"):
    """The metrics of the module docstring from AdvGLUE label-id predictions: `predictions` (N,) on the adversarial
    examples, `original_predictions` (N,) on their originals (ignored where an example has none)."""
    labels = np.array([example.label for example in examples])
    correct = np.asarray(predictions) == labels  # (N,)
    paired = np.array([example.original_texts is not None for example in examples])
    name = f"{prefix}_advglue"
    metrics = {f"{name}_accuracy": float(correct.mean()), f"{name}_examples": len(examples)}
    metrics[f"{name}_paired_examples"] = int(paired.sum())
    if paired.any():  # no original, no benign accuracy: the keys are left out rather than set to a made-up value
        benign = float((np.asarray(original_predictions)[paired] == labels[paired]).mean())
        adversarial = float(correct[paired].mean())
        metrics[f"{name}_benign_accuracy"] = benign
        metrics[f"{name}_paired_adversarial_accuracy"] = adversarial
        metrics[f"{name}_accuracy_drop"] = benign - adversarial
    groups = {f"_{level}": [] for level in ATTACK_LEVELS}
    methods = sorted({normalise_label_name(example.method) for example in examples})
    groups.update({f"_method_{method}": [] for method in methods})
    for i, example in enumerate(examples):
        groups[f"_{example.level}"].append(i)
        groups[f"_method_{normalise_label_name(example.method)}"].append(i)
    for suffix, members in groups.items():
        if members:  # a level the task lacks (MNLI has no human-written examples) gets no key
            metrics[f"{name}_accuracy{suffix}"] = float(correct[members].mean())
            metrics[f"{name}_examples{suffix}"] = len(members)
    return metrics


def evaluate_advglue_with_trainer(
    trainer, path, task, max_length=None, label_names=None, padding=False, metric_key_prefix="eval"
):
    """AdvGLUE metrics and per-example records of `trainer.model` on `task`, with the trainer's tokenizer
    (`processing_class`), collator, batch size and devices (`trainer.predict`, gathered across DDP processes).

    Texts are truncated to `max_length` tokens (default: the tokenizer's `model_max_length`), as in training;
    `padding="max_length"` for a collator that does not pad. See `label_mapping` for `label_names`."""
    tokenizer = trainer.processing_class
    if tokenizer is None:
        raise ValueError("AdvGLUE evaluation needs the trainer's tokenizer: pass `processing_class=tokenizer`.")
    examples = load_advglue(path, task)
    config = trainer.model.config
    if config.num_labels == 1 or getattr(config, "problem_type", None) == "regression":
        raise ValueError(f"AdvGLUE {task} is a classification; the model is a regression with one output.")
    to_label = label_mapping(config.id2label, task, label_names)
    if config.num_labels != len(to_label):
        raise ValueError(f"The model has {config.num_labels} outputs, AdvGLUE {task} {len(to_label)} labels.")
    paired = [example for example in examples if example.original_texts is not None]
    texts = [example.texts for example in examples] + [example.original_texts for example in paired]
    columns = {f"text{i}": [row[i] for row in texts] for i in range(len(texts[0]))}
    max_length = tokenizer.model_max_length if max_length is None else max_length

    def tokenize(batch):
        parts = [batch[f"text{i}"] for i in range(len(columns))]
        return tokenizer(*parts, truncation=True, max_length=max_length, padding=padding)

    dataset = Dataset.from_dict(columns).map(tokenize, batched=True, remove_columns=list(columns))
    logits = trainer.predict(dataset, metric_key_prefix=metric_key_prefix).predictions
    logits = logits[0] if isinstance(logits, tuple) else logits  # (N + P, num_labels)
    predicted = to_label[logits.argmax(axis=-1)]  # AdvGLUE label ids
    adversarial = predicted[: len(examples)]
    has_original = np.array([example.original_texts is not None for example in examples])
    original = np.full(len(examples), -1)  # -1: no original to predict on
    original[has_original] = predicted[len(examples) :]
    records = [
        {
            "idx": example.idx,
            "label": example.label,
            "prediction": int(adversarial[i]),
            "original_prediction": int(original[i]) if has_original[i] else None,
            "level": example.level,
            "method": example.method,
        }
        for i, example in enumerate(examples)
    ]
    return AdvGlueEvaluation(advglue_metrics(examples, adversarial, original, metric_key_prefix), records)


def evaluate_advglue(model, tokenizer, path, task, batch_size=32, max_length=None, label_names=None):
    """`evaluate_advglue_with_trainer` for a model and tokenizer without a trainer: a plain `Trainer` (writing nothing)
    predicts on its default device (a GPU if there is one), padding each batch dynamically. Returns an
    `AdvGlueEvaluation`."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(output_dir=output_dir, per_device_eval_batch_size=batch_size, report_to="none")
        collator = DataCollatorWithPadding(tokenizer)
        trainer = Trainer(model=model, args=args, processing_class=tokenizer, data_collator=collator)
        return evaluate_advglue_with_trainer(trainer, path, task, max_length, label_names)


def write_records(path, records):
    """Writes per-example records as JSON lines, one example per line, in file order."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)
