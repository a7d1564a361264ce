"""The GLUE tasks: their columns and labels (as on the hub, `nyu-mll/glue`) and their original TSV layout."""

from dataclasses import dataclass, field

__all__ = ["GlueTask", "TASKS", "get_task"]


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task.

    Args:
        name: the hub configuration name (`sst2`).
        text_columns: the hub's text columns, one or a pair.
        label_names: class names in the hub's label order; `None` for the regression task STS-B.
        eval_splits: the labelled evaluation splits; MNLI has a matched and a mismatched one.
        submissions: test split -> GLUE server file stem (`MNLI-m`), for `--do_predict`.
        directory: the task's folder in the original GLUE download (`SST-2`).
        tsv_files: split -> file name in that folder.
        tsv_columns: original header -> hub column, for the text columns.
        tsv_label: the original label column (`None`: the task has no labels).
        headerless: column names of the files that have no header row (CoLA's train and dev).
    """

    name: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None
    eval_splits: tuple[str, ...]
    submissions: dict[str, str]
    directory: str
    tsv_files: dict[str, str]
    tsv_columns: dict[str, str]
    tsv_label: str | None
    headerless: tuple[str, ...] = field(default=())

    @property
    def is_regression(self):
        return self.label_names is None

    @property
    def num_labels(self):
        return 1 if self.is_regression else len(self.label_names)

    @property
    def submits_label_names(self):
        """The GLUE server takes label names for the entailment tasks, 0/1 for the binary ones, floats for STS-B."""
        return self.label_names is not None and "entailment" in self.label_names and self.name != "wnli"


def _splits(train="train.tsv", dev="dev.tsv", test="test.tsv"):
    return {"train": train, "validation": dev, "test": test}


ENTAILMENT = ("entailment", "not_entailment")
NLI = ("entailment", "neutral", "contradiction")

TASKS = {
    task.name: task
    for task in [
        GlueTask(
            "cola", ("sentence",), ("unacceptable", "acceptable"), ("validation",), {"test": "CoLA"}, "CoLA",
            _splits(), {"sentence": "sentence"}, "label", headerless=("source", "label", "original_label", "sentence"),
        ),
        GlueTask(
            "sst2", ("sentence",), ("negative", "positive"), ("validation",), {"test": "SST-2"}, "SST-2",
            _splits(), {"sentence": "sentence"}, "label",
        ),
        GlueTask(
            "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("validation",), {"test": "MRPC"},
            "MRPC", _splits(), {"#1 String": "sentence1", "#2 String": "sentence2"}, "Quality",
        ),
        GlueTask(
            "stsb", ("sentence1", "sentence2"), None, ("validation",), {"test": "STS-B"}, "STS-B",
            _splits(), {"sentence1": "sentence1", "sentence2": "sentence2"}, "score",
        ),
        GlueTask(
            "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("validation",), {"test": "QQP"}, "QQP",
            _splits(), {"question1": "question1", "question2": "question2"}, "is_duplicate",
        ),
        GlueTask(
            "mnli", ("premise", "hypothesis"), NLI, ("validation_matched", "validation_mismatched"),
            {"test_matched": "MNLI-m", "test_mismatched": "MNLI-mm"}, "MNLI",
            {
                "train": "train.tsv",
                "validation_matched": "dev_matched.tsv",
                "validation_mismatched": "dev_mismatched.tsv",
                "test_matched": "test_matched.tsv",
                "test_mismatched": "test_mismatched.tsv",
            },
            {"sentence1": "premise", "sentence2": "hypothesis"}, "gold_label",
        ),
        GlueTask(
            "qnli", ("question", "sentence"), ENTAILMENT, ("validation",), {"test": "QNLI"}, "QNLI",
            _splits(), {"question": "question", "sentence": "sentence"}, "label",
        ),
        GlueTask(
            "rte", ("sentence1", "sentence2"), ENTAILMENT, ("validation",), {"test": "RTE"}, "RTE",
            _splits(), {"sentence1": "sentence1", "sentence2": "sentence2"}, "label",
        ),
        GlueTask(
            "wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("validation",), {"test": "WNLI"},
            "WNLI", _splits(), {"sentence1": "sentence1", "sentence2": "sentence2"}, "label",
        ),
        # The diagnostic set: MNLI's labels, no training or dev data; predicted with an MNLI model.
        GlueTask(
            "ax", ("premise", "hypothesis"), NLI, (), {"test": "AX"}, "diagnostic",
            {"test": "diagnostic.tsv"}, {"sentence1": "premise", "sentence2": "hypothesis"}, None,
        ),
    ]
}  # fmt: skip


def get_task(name):
    if name not in TASKS:
        raise ValueError(f"`task_name` must be one of {sorted(TASKS)}, got {name!r}.")
    return TASKS[name]
