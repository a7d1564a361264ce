"""Hooks never outlive a training step, unsupported set-ups are refused, non-finite gradients never reach weights."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import BartConfig, BartForConditionalGeneration, PretrainedConfig, PreTrainedModel, Trainer

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from adv_trainer.embedding_hook import EmbeddingOutputHook
from adv_trainer.unsupported import check_parallelism
from tests.tiny_models import (
    arguments,
    checkpointing,
    classification_rows,
    collate,
    dataset,
    lm_rows,
    max_weight_difference,
    tiny_bert,
    train,
)


def test_no_hook_after_train_evaluate_and_predict_and_eval_is_deterministic(tmp_path):
    rows = classification_rows(8)
    trainer = train(tiny_bert(), tmp_path, rows, adv_method="pgd", adv_epsilon=0.3)
    embedding = trainer.model.get_input_embeddings()
    assert not embedding._forward_hooks
    first = trainer.predict(dataset(rows)).predictions
    metrics = trainer.evaluate(dataset(rows))
    assert not embedding._forward_hooks
    torch.testing.assert_close(trainer.predict(dataset(rows)).predictions, first, atol=0, rtol=0)
    plain = Trainer(model=trainer.model, args=trainer.args, data_collator=collate)
    torch.testing.assert_close(plain.predict(dataset(rows)).predictions, first, atol=0, rtol=0)
    assert metrics["eval_loss"] == pytest.approx(plain.evaluate(dataset(rows))["eval_loss"])


@pytest.mark.parametrize(
    "adv,failing_forward",
    [
        ({"adv_method": "pgd"}, 3),
        # CreAT also hooks the model's forward for the last hidden states: those hooks must go too.
        ({"adv_method": "creat", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2, "adv_init_mag": 0.05}, 2),
    ],
    ids=["pgd", "creat"],
)
def test_hooks_are_removed_when_a_pass_raises(tmp_path, adv, failing_forward):
    model = tiny_bert()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **adv))
    calls = []

    def fail_on_a_later_forward(module, args):
        calls.append(1)
        if len(calls) == failing_forward:
            raise RuntimeError("injected failure")

    handle = model.bert.encoder.register_forward_pre_hook(fail_on_a_later_forward)
    with pytest.raises(RuntimeError, match="injected failure"):
        trainer.training_step(model, collate(classification_rows(4)))
    handle.remove()
    assert not model.get_input_embeddings()._forward_hooks
    assert not model._forward_hooks and not model._forward_pre_hooks


def test_adversarial_passes_start_at_adv_start_step(tmp_path):
    trainer = train(tiny_bert(), tmp_path, classification_rows(16), max_steps=3, adv_method="fgm", adv_start_step=2)
    logs = trainer.state.log_history[:3]
    assert ["adv_loss" in log for log in logs] == [False, False, True]


def test_a_fractional_adv_start_step_counts_in_the_runs_steps_rounded_up(tmp_path):
    # 0.3 of 4 steps is 1.2: rounded up (like `warmup_steps`), steps 0 and 1 train plain.
    trainer = train(tiny_bert(), tmp_path, classification_rows(16), max_steps=4, adv_method="fgm", adv_start_step=0.3)
    logs = trainer.state.log_history[:4]
    assert ["adv_loss" in log for log in logs] == [False, False, True, True]


def test_logged_loss_is_the_clean_loss(tmp_path):
    rows = classification_rows(8)
    plain = train(tiny_bert(), tmp_path / "none", rows, max_steps=1)
    adversarial = train(tiny_bert(), tmp_path / "fgm", rows, max_steps=1, adv_method="fgm", adv_epsilon=0.5)
    log = adversarial.state.log_history[0]
    assert log["loss"] == pytest.approx(plain.state.log_history[0]["loss"], rel=1e-6)
    assert log["adv_loss"] > log["loss"]  # the perturbation ascends the loss
    assert log["adv_delta_norm"] == pytest.approx(0.5) and log["adv_skipped"] == 0


def test_adversarial_statistics_reach_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny_bert(), tmp_path, classification_rows(8), adv_method="fgm", report_to="tensorboard")
    (run,) = [path.parent for path in tmp_path.rglob("events.out.tfevents.*")]
    tags = EventAccumulator(str(run)).Reload().Tags()["scalars"]
    assert {"train/loss", "train/adv_loss", "train/adv_delta_norm", "train/adv_skipped"} <= set(tags)


class InfAtFirstExample(torch.autograd.Function):
    """Identity whose backward makes the first example's gradient infinite, as an fp16 overflow would."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        grad[0] = float("inf")
        return grad


@pytest.mark.parametrize("adv,skips", [({"adv_method": "fgm"}, 1), ({"adv_method": "pgd", "adv_k": 3}, 3)])
def test_non_finite_perturbation_gradient_never_reaches_the_weights(tmp_path, added, adv, skips):
    model = tiny_bert()
    # Everything below the injection point is frozen, so only the perturbation's gradient is infinite.
    model.bert.embeddings.requires_grad_(False)
    model.bert.embeddings.register_forward_hook(lambda module, args, output: InfAtFirstExample.apply(output))
    trainer = train(model, tmp_path, classification_rows(4), max_steps=1, **adv)
    assert trainer.state.log_history[0]["adv_skipped"] == skips
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert max_weight_difference(model, trainer.model) > 1e-3
    final = added[-1]
    assert (final[0] == 0).all() and (final[1:].flatten(1).norm(dim=1) > 0).all()


def test_bf16_autocast_keeps_the_perturbation_in_float32(tmp_path, monkeypatch):
    dtypes = []
    original = EmbeddingOutputHook._add_delta

    def recording(self, module, args, output):
        result = original(self, module, args, output)
        dtypes.append(self.delta.dtype)
        return result

    monkeypatch.setattr(EmbeddingOutputHook, "_add_delta", recording)
    trainer = train(tiny_bert(), tmp_path, classification_rows(8), bf16=True, adv_method="pgd", adv_epsilon=0.3)
    log = trainer.state.log_history[0]
    assert set(dtypes) == {torch.float32}
    assert torch.isfinite(torch.tensor([log["loss"], log["adv_loss"]])).all()
    assert log["adv_delta_norm"] <= 0.3 + 1e-6


@pytest.mark.filterwarnings("error::FutureWarning")  # the deprecated `gradient_checkpointing*` aliases warn
def test_non_reentrant_gradient_checkpointing_gives_the_same_update(tmp_path):
    rows = classification_rows(8)
    plain = train(tiny_bert(), tmp_path / "plain", rows, adv_method="pgd", adv_epsilon=0.3)
    checkpointed = train(
        tiny_bert(),
        tmp_path / "gc",
        rows,
        adv_method="pgd",
        adv_epsilon=0.3,
        **checkpointing(use_reentrant=False),
    )
    assert max_weight_difference(plain.model, checkpointed.model) < 1e-6


def test_reentrant_gradient_checkpointing_is_refused(tmp_path):
    with pytest.raises(ValueError, match="reentrant gradient checkpointing.*use_reentrant': False"):
        train(
            tiny_bert(),
            tmp_path,
            classification_rows(8),
            adv_method="fgm",
            **checkpointing(use_reentrant=True),
        )


def test_encoder_decoder_model_is_refused(tmp_path):
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=50, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32,
    )  # fmt: skip
    with pytest.raises(ValueError, match="encoder-decoder model BartForConditionalGeneration"):
        train(BartForConditionalGeneration(config), tmp_path, lm_rows(8), adv_method="fgm")


def test_inputs_embeds_are_refused(tmp_path):
    model = tiny_bert()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, adv_method="fgm"))
    inputs = collate(classification_rows(4))
    inputs["inputs_embeds"] = model.get_input_embeddings()(inputs.pop("input_ids"))
    with pytest.raises(ValueError, match="inputs given as `inputs_embeds` are not supported"):
        trainer.training_step(model, inputs)
    assert not model.get_input_embeddings()._forward_hooks


class EmbedsTwice(nn.Module):
    """A model that runs its input embedding twice per forward, as an encoder-decoder's shared embedding does."""

    def __init__(self):
        super().__init__()
        self.bert = tiny_bert()

    def get_input_embeddings(self):
        return self.bert.get_input_embeddings()

    def forward(self, input_ids, attention_mask, labels):
        self.bert.get_input_embeddings()(input_ids)
        return self.bert(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def test_an_embedding_that_runs_twice_in_one_pass_is_refused(tmp_path):
    trainer = AdversarialTrainer(model=EmbedsTwice(), args=arguments(tmp_path, adv_method="fgm"))
    with pytest.raises(RuntimeError, match="ran twice in one forward pass"):
        trainer.training_step(trainer.model, collate(classification_rows(4)))


class NoEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, input_ids, attention_mask, labels):
        return {"loss": self.linear(input_ids.float()[:, :2]).sum()}


def test_a_model_without_input_embedding_is_refused(tmp_path):
    trainer = AdversarialTrainer(model=NoEmbedding(), args=arguments(tmp_path, adv_method="fgm"))
    with pytest.raises(ValueError, match="NoEmbedding has no input embedding module"):
        trainer.training_step(trainer.model, collate(classification_rows(4)))


class NotImplementedEmbedding(PreTrainedModel):
    """A transformers model whose inherited `get_input_embeddings()` finds no embedding and raises."""

    config_class = PretrainedConfig

    def __init__(self):
        super().__init__(PretrainedConfig())
        self.linear = nn.Linear(2, 2)

    def forward(self, input_ids, attention_mask, labels):
        return {"loss": self.linear(input_ids.float()[:, :2]).sum()}


def test_a_transformers_model_whose_get_input_embeddings_raises_is_refused(tmp_path):
    model = NotImplementedEmbedding()
    with pytest.raises(NotImplementedError):
        model.get_input_embeddings()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, adv_method="fgm"))
    with pytest.raises(ValueError, match="NotImplementedEmbedding has no input embedding module"):
        trainer.training_step(trainer.model, collate(classification_rows(4)))


def test_lomo_optimizer_is_refused(tmp_path):
    model = tiny_bert()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, adv_method="fgm"))
    trainer.args.optim = "lomo"
    with pytest.raises(ValueError, match="lomo optimizer: it updates the weights inside `backward`"):
        trainer.training_step(model, collate(classification_rows(4)))


def test_deepspeed_is_refused_with_a_message_that_names_fsdp2(tmp_path):
    trainer = AdversarialTrainer(model=tiny_bert(), args=arguments(tmp_path, adv_method="fgm"))
    trainer.is_deepspeed_enabled = True
    with pytest.raises(ValueError, match="does not support DeepSpeed: .* use FSDP2"):
        check_parallelism(trainer)


@pytest.mark.parametrize(
    "version,method,message",
    [(1, "fgm", "does not support FSDP1: .*fsdp_version': 2"), (2, "awp", "`adv_method='awp'` under FSDP2"),
     (2, "a2t", "`adv_method='a2t'` under FSDP2"), (2, "fgm", None)],
)  # fmt: skip
def test_fsdp1_and_the_methods_fsdp2_cannot_run_are_refused(tmp_path, version, method, message):
    # The trainer as accelerate leaves it with FSDP on (tests/test_fsdp.py runs it for real, over gloo).
    args = arguments(tmp_path, adv_method=method)
    state = SimpleNamespace(fsdp_plugin=SimpleNamespace(fsdp_version=version))
    trainer = SimpleNamespace(is_fsdp_enabled=True, accelerator=SimpleNamespace(state=state), args=args)
    if message is None:
        check_parallelism(trainer)
    else:
        with pytest.raises(ValueError, match=message):
            check_parallelism(trainer)


def test_data_parallel_is_refused_at_construction(tmp_path):
    args = arguments(tmp_path, adv_method="fgm")
    args._n_gpu = 2
    with pytest.raises(ValueError, match=r"nn.DataParallel .* Launch with `torchrun` \(DDP\)"):
        AdversarialTrainer(model=tiny_bert(), args=args)


def test_plain_training_arguments_are_refused(tmp_path):
    from transformers import TrainingArguments

    with pytest.raises(TypeError, match="`args` must be AdversarialTrainingArguments, got TrainingArguments"):
        AdversarialTrainer(model=tiny_bert(), args=TrainingArguments(output_dir=str(tmp_path), report_to="none"))
    assert isinstance(AdversarialTrainer(model=tiny_bert()).args, AdversarialTrainingArguments)
