"""PEFT models: LoRA (with and without gradient checkpointing) and prompt tuning, against the update rule."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from adv_trainer import AdversarialTrainer
from tests.readme_examples import run_readme_example
from tests.test_attacks import EPS, assert_fgm_matches_the_hand_computation
from tests.tiny_models import (
    VOCAB,
    checkpointing,
    classification_rows,
    collate,
    max_weight_difference,
    tiny_bert,
    train,
)

peft = pytest.importorskip("peft", reason="PEFT is in the `test` extra: pip install -e '.[test]'")


def lora_llama(seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_labels=2,
        pad_token_id=0,
    )
    lora = peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    return peft.get_peft_model(LlamaForSequenceClassification(config), lora)


def is_lora_or_head(name):
    return "lora_" in name or "modules_to_save" in name


def test_readme_lora_example_moves_only_lora_and_head_weights(tmp_path, monkeypatch):
    initial = {}
    original_init = AdversarialTrainer.__init__

    def recording_init(self, model=None, *args, **kwargs):
        initial.update({name: p.detach().clone() for name, p in model.named_parameters()})
        original_init(self, model, *args, **kwargs)

    monkeypatch.setattr(AdversarialTrainer, "__init__", recording_init)
    trainer = run_readme_example("## With PEFT (LoRA)", monkeypatch, tmp_path).trainer
    changed = {name for name, p in trainer.model.named_parameters() if not torch.equal(p, initial[name])}
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert changed == trainable and all(is_lora_or_head(name) for name in trainable)
    assert any("lora_A" in name for name in changed) and any("modules_to_save" in name for name in changed)
    logs = [entry for entry in trainer.state.log_history if "adv_loss" in entry]
    assert len(logs) == 4 and all(entry["adv_loss"] > 0 for entry in logs)
    assert all(entry["adv_delta_norm"] == pytest.approx(0.3, rel=1e-5) for entry in logs)  # FGM: eps per example


def test_lora_with_non_reentrant_gradient_checkpointing_gives_the_same_update(tmp_path):
    model, rows = lora_llama(), classification_rows(8)
    adv = {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2}
    plain = train(model, tmp_path / "plain", rows, **adv)
    checkpointed = train(
        model,
        tmp_path / "checkpointed",
        rows,
        **checkpointing(use_reentrant=False),
        **adv,
    )
    assert checkpointed.model.get_base_model().is_gradient_checkpointing
    assert max_weight_difference(plain.model, checkpointed.model) < 1e-6
    assert max_weight_difference(model, checkpointed.model) > 1e-3
    assert checkpointed.state.log_history[0]["adv_loss"] == pytest.approx(plain.state.log_history[0]["adv_loss"])


def test_prompt_tuning_perturbs_the_word_embeddings_beside_the_virtual_tokens(tmp_path, added):
    # PEFT embeds the words, prepends its virtual tokens and calls the model with `inputs_embeds`: the hook sees
    # the word embedding's (B, T, E) output once per pass, and the virtual tokens train unperturbed.
    config = peft.PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=3)
    model, inputs = peft.get_peft_model(tiny_bert(), config), collate(classification_rows(4))
    assert_fgm_matches_the_hand_computation(tmp_path, model, inputs)
    shape = (*inputs["input_ids"].shape, 16)
    assert [tuple(delta.shape) for delta in added] == [shape, shape]  # clean pass (delta = 0), FGM pass
    norms = added[1].flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.full((4,), EPS))
    trainer = train(model, tmp_path / "train", classification_rows(8), adv_method="fgm", adv_epsilon=EPS)
    trained = dict(trainer.model.named_parameters())
    for name, p in model.named_parameters():
        assert torch.equal(p, trained[name]) != p.requires_grad, name  # only the prompt and the head move
