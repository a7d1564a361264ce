"""Reads the original GLUE download (`<TASK>/train.tsv`, ...) into the schema of the hub's `nyu-mll/glue`.

Every file is tab-separated, read with `QUOTE_NONE` (sentences contain quote characters) and `utf-8-sig` (MRPC's
files start with a byte-order mark). Columns are found by their header names, since MNLI's train and dev files have
different numbers of label columns; CoLA's train and dev files have no header. Labels become the hub's integer ids
(label names or 0/1 in the files), STS-B's scores floats; test files have no labels and get -1, as on the hub.
"""

import csv
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

__all__ = ["read_glue_dir"]

INDEX_COLUMNS = ("index", "id")


def read_glue_dir(task, glue_dir, splits):
    """The `splits` of `task` (a `GlueTask`) from the GLUE folder `glue_dir`, as a `DatasetDict`."""
    folder = Path(glue_dir) / task.directory
    missing = [task.tsv_files[s] for s in splits if not (folder / task.tsv_files[s]).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The GLUE folder {glue_dir} has no {', '.join(f'{task.directory}/{m}' for m in missing)} for task "
            f"'{task.name}'. Point `--glue_dir` (or GLUE_DIR) at a folder with the original GLUE layout "
            f"(<glue_dir>/{task.directory}/{task.tsv_files[splits[0]]}), or leave it unset to use the hub."
        )
    return DatasetDict({split: _read_split(task, folder / task.tsv_files[split]) for split in splits})


def _read_split(task, path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = [row for row in rows if row]
    header, body, first_line = _split_header(task, path, rows)
    if not body:
        raise ValueError(f"{path} has no rows of data; it must hold the task's examples.")
    column = {name: i for i, name in enumerate(header)}
    index = next((column[name] for name in INDEX_COLUMNS if name in column), None)
    labelled = task.tsv_label is not None and task.tsv_label in column
    data = {"idx": [], **{hub: [] for hub in task.tsv_columns.values()}, "label": []}
    for position, row in enumerate(body):
        line = first_line + position
        if len(row) < len(header):
            raise ValueError(f"{path}, line {line}: expected {len(header)} tab-separated columns, got {len(row)}.")
        data["idx"].append(int(row[index]) if index is not None else position)
        for original, hub in task.tsv_columns.items():
            data[hub].append(row[column[original]])
        data["label"].append(_label(task, row[column[task.tsv_label]], path, line) if labelled else -1)
    return Dataset.from_dict(data, features=_features(task))


def _split_header(task, path, rows):
    if rows and all(name in rows[0] for name in task.tsv_columns):
        return rows[0], rows[1:], 2
    if task.headerless and rows and len(rows[0]) == len(task.headerless):
        return list(task.headerless), rows, 1
    if not rows:
        raise ValueError(f"{path} is empty; it must hold the task's examples.")
    raise ValueError(
        f"{path} lacks the columns {sorted(task.tsv_columns)} of task '{task.name}' in its header (found {rows[0]}). "
        "Use the original GLUE files, or pass your own data with `--train_file/--validation_file/--test_file`."
    )


def _label(task, value, path, line):
    if task.is_regression:
        try:
            score = float(value)
        except ValueError:
            score = float("nan")
        if not 0.0 <= score <= 5.0:
            raise ValueError(f"{path}, line {line}: STS-B scores lie in [0, 5], got {value!r}.")
        return score
    if value in task.label_names:
        return task.label_names.index(value)
    if value.isdigit() and int(value) < len(task.label_names):
        return int(value)
    raise ValueError(
        f"{path}, line {line}: label {value!r} is not one of task '{task.name}''s labels "
        f"{list(task.label_names)} (or their ids 0..{len(task.label_names) - 1})."
    )


def _features(task):
    label = Value("float32") if task.is_regression else ClassLabel(names=list(task.label_names))
    texts = {hub: Value("string") for hub in task.tsv_columns.values()}
    return Features({"idx": Value("int32"), **texts, "label": label})
