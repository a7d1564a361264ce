import pytest

from tests.tiny_models import classification_rows, max_weight_difference, tiny_bert, train

# A random start draws from the RNG every step and adv_start_step counts global steps: both must survive a resume.
PGD = {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_alpha": 0.1, "adv_k": 2, "adv_init_mag": 0.2, "adv_start_step": 3}


@pytest.mark.parametrize("gradient_accumulation_steps", [1, 2])
def test_resumed_run_matches_the_uninterrupted_run(tmp_path, gradient_accumulation_steps):
    model, rows = tiny_bert(), classification_rows(32)
    settings = {
        "max_steps": 6,
        "save_strategy": "steps",
        "save_steps": 2,
        "gradient_accumulation_steps": gradient_accumulation_steps,
        **PGD,
    }
    whole = train(model, tmp_path / "whole", rows, **settings)
    checkpoint = tmp_path / "whole" / "out" / "checkpoint-2"
    resumed = train(model, tmp_path / "resumed", rows, resume_from_checkpoint=str(checkpoint), **settings)
    assert resumed.state.global_step == 6
    assert max_weight_difference(whole.model, resumed.model) < 1e-6
    adversarial = [log["adv_loss"] for log in whole.state.log_history if "adv_loss" in log]
    assert len(adversarial) == 3
    assert adversarial[-1] == pytest.approx(resumed.state.log_history[-2]["adv_loss"], rel=1e-5)
