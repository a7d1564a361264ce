"""`Trainer.hyperparameter_search` over `adv_*` fields: every trial trains with its own validated values."""

import optuna
import pytest
from transformers import TrainerCallback

from adv_trainer import AdversarialTrainer
from tests.tiny_models import arguments, classification_rows, collate, dataset, tiny_bert

# BruteForceSampler (experimental in optuna) tries every choice exactly once.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
EPSILONS = (0.5, 2.0, 3.0)


class RecordLogs(TrainerCallback):
    """What each trial's arguments and attack were when it logged its first training step."""

    def __init__(self):
        self.trials = []
        self.trainer = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if "adv_loss" in logs and state.global_step == 1:
            attack = self.trainer.attack
            self.trials.append((args.adv_epsilon, args.adv_alpha, attack.eps, getattr(attack, "alpha", None), logs))


def search(tmp_path, n_trials, hp_space, **adversarial):
    rows = classification_rows(8)
    recorder = RecordLogs()
    trainer = AdversarialTrainer(
        model_init=lambda trial: tiny_bert(),
        args=arguments(tmp_path, max_steps=1, eval_strategy="no", **adversarial),
        train_dataset=dataset(rows),
        eval_dataset=dataset(rows),
        data_collator=collate,
        callbacks=[recorder],
    )
    recorder.trainer = trainer
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trainer.hyperparameter_search(
        hp_space=hp_space,
        backend="optuna",
        n_trials=n_trials,
        direction="minimize",
        sampler=optuna.samplers.BruteForceSampler(seed=0),
    )
    return recorder.trials


def test_each_trial_trains_with_its_own_epsilon(tmp_path):
    trials = search(
        tmp_path,
        3,
        lambda trial: {"adv_epsilon": trial.suggest_categorical("adv_epsilon", EPSILONS)},
        adv_method="fgm",
    )
    assert sorted(epsilon for epsilon, *_ in trials) == list(EPSILONS)
    for epsilon, _, attack_epsilon, _, logs in trials:
        assert attack_epsilon == epsilon
        assert logs["adv_delta_norm"] == pytest.approx(epsilon, rel=1e-5)  # FGM's step has norm eps per example


def test_a_searched_epsilon_re_resolves_pgds_default_alpha(tmp_path):
    trials = search(
        tmp_path,
        2,
        lambda trial: {"adv_epsilon": trial.suggest_categorical("adv_epsilon", EPSILONS[:2])},
        adv_method="pgd",
    )
    assert sorted(epsilon for epsilon, *_ in trials) == list(EPSILONS[:2])
    for epsilon, alpha, _, attack_alpha, _ in trials:
        assert alpha == attack_alpha == pytest.approx(0.3 * epsilon)  # the defaults' alpha/eps, not eps=0.05's alpha


def test_a_trials_invalid_value_is_refused_with_the_fields_error(tmp_path):
    with pytest.raises(ValueError, match="`adv_k` must be >= 1 for `adv_method='pgd'`, got 0"):
        search(tmp_path, 1, lambda trial: {"adv_k": trial.suggest_int("adv_k", 0, 0)}, adv_method="pgd")
