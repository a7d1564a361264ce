"""Where `run_glue.py` gets its data: a GLUE folder, the hub, or the user's own csv/tsv/json files."""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from datasets import DatasetDict, load_dataset

from .glue_tsv import read_glue_dir

__all__ = ["TaskData", "find_glue_dir", "load_custom_files", "load_glue", "load_task_data", "text_columns_of"]

logger = logging.getLogger(__name__)

HUB_DATASET = "nyu-mll/glue"
FILE_FORMATS = {".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t", "quoting": 3}), ".json": ("json", {})}
FILE_FORMATS[".jsonl"] = FILE_FORMATS[".json"]
TEXT_COLUMN_CHOICES = (("sentence1", "sentence2"), ("sentence",), ("text",))


def find_glue_dir(task, splits, glue_dir=None, fallback=None):
    """The GLUE folder to read: `glue_dir` (`--glue_dir`), else GLUE_DIR, else `fallback` if it holds every file
    the splits need, else None (the hub)."""
    chosen = glue_dir or os.environ.get("GLUE_DIR")
    if chosen:
        return chosen
    if fallback and all((Path(fallback) / task.directory / task.tsv_files[s]).is_file() for s in splits):
        return str(fallback)
    return None


def load_glue(task, splits, glue_dir=None, cache_dir=None):
    """The `splits` of a `GlueTask` from `glue_dir`, or from the hub when it is None."""
    if not splits:  # e.g. only AdvGLUE is evaluated: nothing to read, offline or not
        return DatasetDict()
    if glue_dir:
        return read_glue_dir(task, glue_dir, splits)
    try:
        raw = load_dataset(HUB_DATASET, task.name, cache_dir=cache_dir)
    except Exception as error:  # offline, or the hub is unreachable: say how to read local files instead
        raise RuntimeError(
            f"Could not load GLUE task '{task.name}' from the hub ({HUB_DATASET}): {error}\n"
            "Without the hub, point `--glue_dir` (or the GLUE_DIR environment variable) at a folder with the original "
            f"GLUE files, e.g. <glue_dir>/{task.directory}/{task.tsv_files[splits[0]]}."
        ) from error
    return DatasetDict({split: raw[split] for split in splits})


def load_custom_files(files, cache_dir=None):
    """`files` maps split -> path of a csv, tsv or json(l) file; returns a `DatasetDict` with an `idx` column."""
    splits = {}
    for split, path in files.items():
        suffix = Path(path).suffix.lower()
        if suffix not in FILE_FORMATS:
            raise ValueError(f"`{split}_file` must be a .csv, .tsv, .json or .jsonl file, got {path}.")
        builder, options = FILE_FORMATS[suffix]
        if not Path(path).is_file() or Path(path).stat().st_size == 0:
            raise ValueError(f"`{split}_file` {path} is missing or empty.")
        header_lines = 0 if builder == "json" else 1
        if _non_blank_lines(path, header_lines + 1) <= header_lines:
            raise ValueError(f"`{split}_file` {path} has {'a header and ' if header_lines else ''}no rows of data.")
        dataset = load_dataset(builder, data_files={split: path}, cache_dir=cache_dir, **options)[split]
        if len(dataset) == 0:
            raise ValueError(f"`{split}_file` {path} has no rows.")
        if split != "test" and "label" not in dataset.column_names:
            raise ValueError(f"`{split}_file` {path} has no `label` column (columns: {dataset.column_names}).")
        if "idx" not in dataset.column_names:
            dataset = dataset.add_column("idx", list(range(len(dataset))))
        splits[split] = dataset
    return DatasetDict(splits)


def _non_blank_lines(path, at_most):
    """The number of non-blank lines of `path`, counted up to `at_most` (enough to tell a header-only file)."""
    count = 0
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            count += bool(line.strip())
            if count >= at_most:
                break
    return count


def text_columns_of(dataset, path):
    """The text column(s) of a custom file: `sentence1` and `sentence2`, or `sentence`, or `text`."""
    for columns in TEXT_COLUMN_CHOICES:
        if all(c in dataset.column_names for c in columns):
            return columns
    raise ValueError(
        f"{path} needs its text in a `sentence1` and `sentence2` pair, a `sentence` or a `text` column; "
        f"found columns {dataset.column_names}."
    )


@dataclass
class TaskData:
    """The splits of a task in one schema: `idx`, the text column(s), `label` (-1 where unlabelled).

    `label_list` holds the class values in id order, or is None for a regression."""

    datasets: DatasetDict
    text_columns: tuple[str, ...]
    label_list: list | None


def load_task_data(task, splits, data_args, fallback_glue_dir=None, cache_dir=None):
    """The `splits` of a `GlueTask`, or of the custom files in `data_args` when `task` is None.

    `data_args` has `glue_dir`, `train_file`, `validation_file` and `test_file`; see `find_glue_dir` for where a
    GLUE task is read from."""
    if task is not None:
        glue_dir = find_glue_dir(task, splits, data_args.glue_dir, fallback_glue_dir)
        logger.info(f"Reading GLUE task {task.name} from {glue_dir or 'the hub'}")
        labels = None if task.is_regression else list(task.label_names)
        return TaskData(load_glue(task, splits, glue_dir, cache_dir), task.text_columns, labels)
    files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
    files = {split: path for split, path in files.items() if path and split in splits}
    datasets = load_custom_files(files, cache_dir)
    first = next(iter(files))
    labelled = [split for split in files if "label" in datasets[split].column_names]
    if not labelled:
        raise ValueError("Custom data needs a `label` column in its train or validation file: it defines the classes.")
    regression = bool(labelled) and datasets[labelled[0]].features["label"].dtype in ("float32", "float64")
    labels = None if regression else _custom_label_list(datasets, labelled, files)
    return TaskData(datasets, text_columns_of(datasets[first], files[first]), labels)


def _custom_label_list(datasets, labelled, files):
    """The classes of custom files: the first labelled split's values, sorted; the others must be among them."""
    label_list = sorted(set(datasets[labelled[0]]["label"]))
    for split in labelled[1:]:
        unknown = sorted(set(datasets[split]["label"]) - set(label_list))
        if unknown:
            raise ValueError(
                f"{files[split]} has labels {unknown[:5]} that {files[labelled[0]]} does not have {label_list[:10]}."
            )
    return label_list
