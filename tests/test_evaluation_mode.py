"""Every robustness evaluation sees the model as `Trainer.evaluate` does: with the optimizer in its eval mode."""

import numpy as np
import pytest
import torch

from adv_trainer import AdversarialTrainer
from tests.test_embedding_neighbour import SENTENCE, classifier, tokenizer  # noqa: F401  (tokenizer is a fixture)
from tests.tiny_models import arguments, classification_rows, dataset, tiny_bert, train

pytest.importorskip("schedulefree", reason="schedule-free optimizers are in the `test` extra: pip install -e .[test]")


def mean_logit(prediction):
    return {"mean_logit": float(np.mean(prediction.predictions))}


def test_robustness_at_radius_zero_equals_evaluate_under_a_schedule_free_optimizer(tmp_path):
    rows = classification_rows(16)
    trainer = train(tiny_bert(), tmp_path, rows, optim="schedule_free_adamw", learning_rate=0.05, max_steps=4)
    trainer.compute_metrics = mean_logit
    data = dataset(rows)
    metrics = trainer.evaluate_robustness(data, epsilons=[0.0], steps=2)
    robust = metrics["eval_robust_mean_logit_eps0"]
    assert "epoch" not in metrics  # what `log` adds stays in the log
    clean = trainer.evaluate(data)["eval_mean_logit"]
    trainer.optimizer.train()  # as the next training step would: the weights it steps from differ
    at_train_weights = trainer.evaluate_robustness(data, epsilons=[0.0], steps=2)["eval_robust_mean_logit_eps0"]
    assert robust == pytest.approx(clean, abs=1e-6)
    assert at_train_weights == pytest.approx(clean, abs=1e-6)  # put back in eval mode, as `evaluate` does
    assert trainer.model.training is False


class HeadFlippingSGD(torch.optim.SGD):
    """An optimizer with an eval mode that negates the classifier: every prediction of a binary head flips."""

    def __init__(self, model):
        super().__init__(model.parameters(), lr=0.0)
        self.head, self.evaluating = model.classifier, False

    def _flip(self):
        with torch.no_grad():
            self.head.weight.neg_()
            self.head.bias.neg_()

    def eval(self):
        if not self.evaluating:
            self._flip()
        self.evaluating = True

    def train(self):
        if self.evaluating:
            self._flip()
        self.evaluating = False


def test_the_word_attack_scores_the_weights_evaluate_scores(tmp_path, tokenizer):  # noqa: F811
    model = classifier(tokenizer).train()
    texts = [SENTENCE, "a dull , lifeless film .", "clever , warm and funny .", "it never finds its footing ."]
    data = dataset([{"sentence": text, "label": 0} for text in texts])
    trainer = AdversarialTrainer(
        model=model, args=arguments(tmp_path), processing_class=tokenizer, optimizers=(HeadFlippingSGD(model), None)
    )
    encoded = [tokenizer(text, return_tensors="pt") for text in texts]
    with torch.no_grad():
        training_predictions = [int(model.eval()(**inputs).logits.argmax()) for inputs in encoded]
    model.train()
    metrics, results = trainer.evaluate_word_attack(
        data, ["sentence"], "embedding_neighbour", max_queries=5, neighbours=2
    )
    assert [result.original_prediction for result in results] == [1 - p for p in training_predictions]
    assert metrics["eval_embedding_neighbour_examples"] == len(texts) and "epoch" not in metrics
    assert model.training is True  # the trainer's model was in train mode before; it is again
