"""TRL's `DPOTrainer` combined with `AdversarialTrainer`: the policy's passes are attacked, never the reference."""

import copy
from dataclasses import dataclass

import pytest
import torch
from datasets import Dataset

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from tests.test_trl import WORDS, logged, tiny_llama, word_tokenizer
from tests.tiny_models import max_weight_difference

trl = pytest.importorskip("trl", reason="TRL is in the `test` extra: pip install -e '.[test]'")
peft = pytest.importorskip("peft", reason="PEFT is in the `test` extra: pip install -e '.[test]'")


@dataclass
class AdversarialDPOConfig(trl.DPOConfig, AdversarialTrainingArguments):
    pass


class AdversarialDPOTrainer(trl.DPOTrainer, AdversarialTrainer):
    pass


def preferences(n=8, seed=0):
    """A prompt of three words; the chosen completion continues the run of words, the rejected one jumps."""
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(3, len(WORDS), (n,), generator=generator).tolist()
    word = [w for w in WORDS if w.startswith("w")]

    def run(start, length):
        return " ".join(word[(start + j) % len(word)] for j in range(length))

    return Dataset.from_dict(
        {
            "prompt": [run(s, 3) for s in starts],
            "chosen": [" " + run(s + 3, 2) for s in starts],
            "rejected": [" " + run(s + 11, 2) for s in starts],
        }
    )


def lora():
    return peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)


def dpo(tmp_path, explicit_reference, **adv):
    """Two SGD steps of LoRA DPO; the reference is the base model, given as a copy or left to TRL (`ref_model=None`:
    the policy with its adapters disabled)."""
    base = tiny_llama()
    reference = copy.deepcopy(base) if explicit_reference else None
    args = AdversarialDPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        max_steps=2,
        learning_rate=0.5,
        optim="sgd",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        disable_tqdm=True,
        seed=0,
        **adv,
    )
    trainer = AdversarialDPOTrainer(
        model=base,
        ref_model=reference,
        args=args,
        train_dataset=preferences(),
        processing_class=word_tokenizer(),
        peft_config=lora(),
    )
    trainer.train()
    return trainer


@pytest.mark.parametrize(
    "adv", [{"adv_method": "fgm", "adv_epsilon": 0.3}, {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_k": 2}]
)
def test_the_reference_forward_of_the_policy_sees_clean_embeddings(tmp_path, adv):
    implicit = dpo(tmp_path / "implicit", explicit_reference=False, **adv)
    explicit = dpo(tmp_path / "explicit", explicit_reference=True, **adv)
    plain = dpo(tmp_path / "plain", explicit_reference=False, adv_method="none")
    assert max_weight_difference(implicit.model, explicit.model) < 1e-6
    assert max_weight_difference(implicit.model, plain.model) > 1e-4  # the attack did change the update
    # At step 0 the policy is the reference, so the clean DPO loss is exactly log 2; the perturbed policy's is higher
    # (were the reference perturbed as well, the two would cancel and it would be log 2 too).
    assert logged(implicit, "loss")[0] == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-6)
    assert logged(implicit, "adv_loss")[0] > logged(implicit, "loss")[0] + 1e-4
    assert logged(implicit, "adv_loss") == pytest.approx(logged(explicit, "adv_loss"), abs=1e-6)


def test_readme_dpo_example_trains_the_adapters_on_the_perturbed_policy(tmp_path, monkeypatch):
    from tests.readme_examples import run_readme_example

    trainer = run_readme_example("## With TRL's `DPOTrainer`", monkeypatch, tmp_path).trainer
    losses, adversarial = logged(trainer, "loss"), logged(trainer, "adv_loss")
    assert len(losses) == len(adversarial) == 4  # one epoch of 16 pairs, 4 per step
    assert losses[0] == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-6)  # the policy is the reference
    assert all(a > c for a, c in zip(adversarial, losses, strict=True))  # the attack raises the DPO loss
    assert all(0.1 < n <= 0.3 + 1e-6 for n in logged(trainer, "adv_delta_norm"))  # K = 2 steps of 0.3 eps each
    changed = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    assert changed and all("lora_" in name for name in changed)
