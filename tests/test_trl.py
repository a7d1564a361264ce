"""TRL's `SFTTrainer` combined with `AdversarialTrainer`: what SFT records counts once, from the clean pass."""

from dataclasses import dataclass

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from tests.readme_examples import run_readme_example
from tests.tiny_models import max_weight_difference

trl = pytest.importorskip("trl", reason="TRL is in the `test` extra: pip install -e '.[test]'")
SFTConfig, SFTTrainer = trl.SFTConfig, trl.SFTTrainer

WORDS = ["<pad>", "<eos>", "<unk>"] + [f"w{i}" for i in range(29)]


@dataclass
class AdversarialSFTConfig(SFTConfig, AdversarialTrainingArguments):
    pass


class AdversarialSFTTrainer(SFTTrainer, AdversarialTrainer):
    pass


def word_tokenizer():
    tokenizer = Tokenizer(models.WordLevel({word: i for i, word in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
    )
    return LlamaForCausalLM(config)


def texts(n, seed=0):
    """Runs of consecutive words of varying length: learnable in a few steps, so token accuracy moves."""
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, 29, (n,), generator=generator).tolist()
    lengths = torch.randint(3, 9, (n,), generator=generator).tolist()
    return Dataset.from_dict(
        {"text": [" ".join(f"w{(s + j) % 29}" for j in range(k)) for s, k in zip(starts, lengths, strict=True)]}
    )


def sft(tmp_path, trainer_class=AdversarialSFTTrainer, model=None, eval_dataset=None, compute_loss_func=None, **kw):
    config_class = SFTConfig if trainer_class is SFTTrainer else AdversarialSFTConfig
    settings = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4,
        "max_steps": 2,
        "learning_rate": 3e-2,
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "disable_tqdm": True,
        "seed": 0,
    }
    settings.update(kw)
    trainer = trainer_class(
        model=tiny_llama() if model is None else model,
        args=config_class(**settings),
        train_dataset=texts(16),
        eval_dataset=eval_dataset,
        processing_class=word_tokenizer(),
        compute_loss_func=compute_loss_func,
    )
    trainer.train()
    return trainer


def logged(trainer, key):
    return [entry[key] for entry in trainer.state.log_history if key in entry]


@pytest.mark.parametrize(
    "adv", [{"adv_method": "fgm", "adv_epsilon": 0.3}, {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_k": 3}]
)
def test_sft_records_tokens_and_accuracy_once_per_micro_batch_from_the_clean_pass(tmp_path, adv):
    plain = sft(tmp_path / "plain", SFTTrainer, gradient_accumulation_steps=2)
    ours = sft(tmp_path / "ours", gradient_accumulation_steps=2, **adv)
    assert logged(ours, "num_tokens") == logged(plain, "num_tokens")  # not twice (FGM) or four times (PGD, K=3)
    # Before the first update both train the same weights, and the clean pass adds delta = 0 exactly.
    for key in ("mean_token_accuracy", "entropy", "loss"):
        assert logged(ours, key)[0] == logged(plain, key)[0], key
    assert logged(ours, "adv_loss")[0] > logged(ours, "loss")[0]


def test_the_probe_leaves_no_trace_in_sft_eval_metrics(tmp_path):
    evaluation = texts(8, seed=1)
    plain = sft(tmp_path / "plain", SFTTrainer, max_steps=3, eval_dataset=evaluation)
    ours = sft(tmp_path / "ours", max_steps=3, eval_dataset=evaluation, adv_method="none")
    assert max_weight_difference(plain.model, ours.model) == 0.0
    assert not any(ours._metrics["eval"].values())  # the probe's two eval-mode calls are gone
    plain_metrics, our_metrics = plain.evaluate(), ours.evaluate()
    for key in ("eval_loss", "eval_mean_token_accuracy", "eval_entropy", "eval_num_tokens"):
        assert our_metrics[key] == plain_metrics[key], key
    assert our_metrics["eval_mean_token_accuracy"] > 0.3  # it learned: the probe's untrained metrics would show


def token_cross_entropy(outputs, labels, num_items_in_batch):
    """SFT's own loss, recomputed from the full logits: summed over predicted tokens, divided by their count."""
    logits, targets = outputs.logits[:, :-1].float(), labels[:, 1:]
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="sum") / num_items_in_batch


def test_a_second_forward_without_gradients_in_compute_loss_keeps_the_update(tmp_path):
    # With `compute_loss_func` SFT runs the loss's forward, then one under no_grad for its metrics.
    # SGD, so that the two losses' float rounding is not amplified the way Adam's first steps amplify it.
    adv = {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_k": 2, "gradient_accumulation_steps": 2, "optim": "sgd"}
    default = sft(tmp_path / "default", **adv)
    with pytest.warns(FutureWarning, match="compute_loss_func"):
        custom = sft(tmp_path / "custom", compute_loss_func=token_cross_entropy, **adv)
    assert max_weight_difference(default.model, custom.model) < 1e-6
    assert max_weight_difference(tiny_llama(), custom.model) > 1e-3
    assert logged(custom, "num_tokens") == logged(default, "num_tokens")
    assert logged(custom, "mean_token_accuracy")[0] == logged(default, "mean_token_accuracy")[0]


def test_sft_label_smoothing_trains_adversarially(tmp_path):
    # Label smoothing also runs a second, gradient-free forward inside SFT's `compute_loss`.
    plain = sft(tmp_path / "plain", SFTTrainer, label_smoothing_factor=0.1)
    ours = sft(tmp_path / "ours", label_smoothing_factor=0.1, adv_method="fgm", adv_epsilon=0.3)
    none = sft(tmp_path / "none", label_smoothing_factor=0.1, adv_method="none")
    assert logged(ours, "num_tokens") == logged(plain, "num_tokens")
    assert logged(ours, "loss")[0] == logged(plain, "loss")[0]
    assert logged(ours, "adv_loss")[0] > logged(ours, "loss")[0]
    assert logged(ours, "adv_delta_norm")[0] == pytest.approx(0.3, rel=1e-5)
    assert max_weight_difference(none.model, ours.model) > 1e-4  # the adversarial term moved the weights
    assert max_weight_difference(none.model, plain.model) == 0.0


def test_adversarial_trainer_listed_before_sft_trainer_is_refused(tmp_path):
    class WrongOrder(AdversarialTrainer, SFTTrainer):
        pass

    with pytest.raises(ValueError, match=r"SFTTrainer.training_step would never run.*class WrongOrder\(SFTTrainer"):
        sft(tmp_path, WrongOrder, adv_method="fgm")


def test_smart_on_sft_is_refused_for_its_token_level_logits(tmp_path):
    with pytest.raises(ValueError, match="causal language models and sequence heads on packed rows are not supported"):
        sft(tmp_path, adv_method="smart")


def test_readme_sft_example_runs_and_counts_tokens_once(tmp_path, monkeypatch):
    example = run_readme_example("## With TRL's `SFTTrainer`", monkeypatch, tmp_path)
    trainer, train = example.trainer, example.train_dataset
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    assert len(train) == len(trainer.train_dataset) and logged(trainer, "num_tokens")[-1] == tokens  # one epoch, once
    assert all(value > 0 for value in logged(trainer, "adv_loss"))
    assert trainer.model.is_gradient_checkpointing  # SFTConfig's default, non-reentrant
    assert all(0.2 < value <= 0.3 + 1e-6 for value in logged(trainer, "adv_delta_norm"))
