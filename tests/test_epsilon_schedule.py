"""The radius over a run: `adv_epsilon_warmup`, and `adv_*` changes during training, which take effect or raise."""

import pytest
from transformers import TrainerCallback

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from adv_trainer.attacks import build_attack
from tests.tiny_models import arguments, classification_rows, collate, dataset, tiny_bert, train


def logged(trainer, key):
    return [log[key] for log in trainer.state.log_history if key in log]


def test_a_linear_warm_up_grows_the_radius_from_the_first_adversarial_step(tmp_path):
    # FGM's delta has norm eps exactly, so the logged norm is the radius each step used.
    trainer = train(
        tiny_bert(), tmp_path, classification_rows(16), max_steps=6, adv_method="fgm", adv_epsilon=0.4,
        adv_start_step=1, adv_epsilon_warmup=4,
    )  # fmt: skip
    assert logged(trainer, "adv_epsilon") == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4])  # step 0 trains plain
    assert logged(trainer, "adv_delta_norm") == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4], rel=1e-5)
    assert trainer.args.adv_epsilon == 0.4  # the schedule does not rewrite the arguments


def test_a_fractional_warm_up_counts_in_the_runs_steps_rounded_up(tmp_path):
    # 0.3 of 5 steps is 1.5: two steps of warm-up.
    trainer = train(
        tiny_bert(), tmp_path, classification_rows(20), max_steps=5, adv_method="fgm", adv_epsilon=0.4,
        adv_epsilon_warmup=0.3,
    )  # fmt: skip
    assert logged(trainer, "adv_delta_norm") == pytest.approx([0.2, 0.4, 0.4, 0.4, 0.4], rel=1e-5)


def test_the_warm_up_scales_the_hyperparameters_that_follow_eps():
    freelb = AdversarialTrainingArguments(output_dir="out", adv_method="freelb", adv_epsilon=0.2, report_to="none")
    attack, half = build_attack(freelb), build_attack(freelb, epsilon_scale=0.5)
    expected = (attack.eps / 2, attack.alpha / 2, attack.init_mag / 2)
    assert (half.eps, half.alpha, half.init_mag) == pytest.approx(expected)
    assert half.steps == attack.steps and half.weight == attack.weight
    awp = AdversarialTrainingArguments(output_dir="out", adv_method="awp", report_to="none")
    attack, half = build_attack(awp), build_attack(awp, epsilon_scale=0.5)
    assert (half.gamma, half.alpha) == pytest.approx((attack.gamma / 2, attack.alpha))  # AWP's step is relative


def test_a_warm_up_for_a_method_without_a_radius_is_reset_with_a_warning():
    with pytest.warns(UserWarning, match="`adv_epsilon_warmup=3` is ignored: `adv_method='r3f'` has no radius"):
        args = AdversarialTrainingArguments(output_dir="out", adv_method="r3f", adv_epsilon_warmup=3)
    assert args.adv_epsilon_warmup == 0


class SetEachStep(TrainerCallback):
    """Sets `args.<name>` to `values[step]` at the beginning of each optimizer step, as a user's schedule would."""

    def __init__(self, name, values):
        self.name, self.values = name, values

    def on_step_begin(self, args, state, control, **kwargs):
        setattr(args, self.name, self.values[state.global_step])


def train_with(tmp_path, callback, **adv):
    trainer = AdversarialTrainer(
        model=tiny_bert(),
        args=arguments(tmp_path, max_steps=4, **adv),
        train_dataset=dataset(classification_rows(16)),
        data_collator=collate,
        callbacks=[callback],
    )
    trainer.train()
    return trainer


def test_a_callbacks_change_of_eps_takes_effect_at_once(tmp_path):
    ramp = [0.1, 0.2, 0.3, 0.4]
    trainer = train_with(tmp_path, SetEachStep("adv_epsilon", ramp), adv_method="fgm", adv_epsilon=0.1)
    assert logged(trainer, "adv_delta_norm") == pytest.approx(ramp, rel=1e-5)
    assert logged(trainer, "adv_epsilon") == pytest.approx(ramp)


def test_a_changed_eps_moves_the_alpha_that_follows_it_but_not_a_given_one(tmp_path):
    following = train_with(tmp_path / "a", SetEachStep("adv_epsilon", [0.1, 0.2, 0.2, 0.4]), adv_method="pgd")
    assert following.args.adv_alpha == pytest.approx(0.3 * 0.4) and following.attack.alpha == pytest.approx(0.12)
    given = train_with(
        tmp_path / "b", SetEachStep("adv_epsilon", [0.1, 0.2, 0.2, 0.4]), adv_method="pgd", adv_alpha=0.05
    )
    assert given.args.adv_alpha == 0.05 and given.attack.eps == 0.4


def test_an_invalid_change_during_training_raises(tmp_path):
    with pytest.raises(ValueError, match=r"`adv_k` must be >= 1 for `adv_method='pgd'`, got 0"):
        train_with(tmp_path, SetEachStep("adv_k", [3, 0, 0, 0]), adv_method="pgd")


def test_changes_during_a_run_are_kept_until_a_reset_starts_from_construction():
    args = AdversarialTrainingArguments(output_dir="out", adv_method="pgd", adv_epsilon=0.1, report_to="none")
    args.adv_epsilon = 0.4
    assert args.apply_adversarial_changes({**args.adversarial_fields(), "adv_epsilon": 0.1}) == {
        "adv_epsilon": (0.1, 0.4),
        "adv_alpha": (pytest.approx(0.03), pytest.approx(0.12)),
    }
    args.adv_k = 5
    resolved = {**args.adversarial_fields(), "adv_k": 3}
    assert args.apply_adversarial_changes(resolved) == {"adv_k": (3, 5)}
    assert (args.adv_epsilon, args.adv_k) == (0.4, 5)  # the earlier change is still given
    args.reset_adversarial_fields()  # what a new hyperparameter-search trial does first
    args.resolve_adversarial_fields()
    assert (args.adv_epsilon, args.adv_k) == (0.1, 3) and args.adv_alpha == pytest.approx(0.03)
