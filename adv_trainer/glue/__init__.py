"""GLUE for `scripts/run_glue.py`: the task table, the original TSV layout, an offline metric, submission files."""

from pathlib import Path

from .data import TaskData, find_glue_dir, load_custom_files, load_glue, load_task_data, text_columns_of
from .submission import write_predictions
from .tasks import TASKS, GlueTask, get_task

METRIC_SCRIPT = str(Path(__file__).with_name("glue_metric.py"))

__all__ = [
    "METRIC_SCRIPT",
    "TASKS",
    "GlueTask",
    "TaskData",
    "find_glue_dir",
    "get_task",
    "load_custom_files",
    "load_glue",
    "load_task_data",
    "text_columns_of",
    "write_predictions",
]
