"""GLUE's metrics as an `evaluate` metric that loads from this file, offline:
`evaluate.load("<path>/glue_metric.py", config_name="mrpc")`.

The same definitions as the hub's `glue` metric: Matthews correlation for CoLA, accuracy and F1 for MRPC and QQP,
Pearson and Spearman correlation for STS-B, accuracy for the others. `accuracy` and `regression` (Pearson, Spearman
and mean squared error) serve custom data files.
"""

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

ACCURACY_TASKS = ("sst2", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte", "wnli", "ax", "accuracy")
CONFIGS = ("cola", "mrpc", "qqp", "stsb", "regression", *ACCURACY_TASKS)


class GlueMetric(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(f"config_name must be one of {list(CONFIGS)}, got {self.config_name!r}.")
        value = "float32" if self.config_name in ("stsb", "regression") else "int64"
        return evaluate.MetricInfo(
            description="GLUE task metrics, computed locally.",
            citation="Wang et al., GLUE: A Multi-Task Benchmark and Analysis Platform for NLU, ICLR 2019.",
            inputs_description="predictions: predicted labels (scores for STS-B); references: gold labels.",
            features=datasets.Features({"predictions": datasets.Value(value), "references": datasets.Value(value)}),
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if self.config_name == "cola":
            return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}
        if self.config_name in ("stsb", "regression"):
            scores = {
                "pearson": float(pearsonr(predictions, references)[0]),
                "spearmanr": float(spearmanr(predictions, references)[0]),
            }
            if self.config_name == "regression":
                scores["mse"] = float(np.mean((predictions - references) ** 2))
            return scores
        accuracy = float((predictions == references).mean())
        if self.config_name in ("mrpc", "qqp"):
            return {"accuracy": accuracy, "f1": float(f1_score(references, predictions))}
        return {"accuracy": accuracy}
