"""Prediction files in the GLUE server's submission format: `<TASK>.tsv` with `index<TAB>prediction` rows."""

from pathlib import Path

__all__ = ["write_predictions"]


def write_predictions(path, ids, predictions, label_names=None):
    """Writes one row per example: a float for regression, a label name when `label_names` is given, else the id."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("index\tprediction\n")
        for index, prediction in zip(ids, predictions, strict=True):
            if isinstance(prediction, float):
                value = f"{prediction:.3f}"
            elif label_names is not None:
                value = label_names[prediction]
            else:
                value = str(prediction)
            f.write(f"{index}\t{value}\n")
