"""Model families, frozen and tied embeddings, and what the passes cost in vocabulary-sized tensors."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from adv_trainer import AdversarialTrainer
from tests.test_attacks import assert_fgm_matches_the_hand_computation
from tests.tiny_models import (
    arguments,
    classification_rows,
    collate,
    lm_rows,
    max_weight_difference,
    tiny_albert,
    tiny_bert,
    tiny_deberta_v2,
    tiny_distilbert,
    tiny_electra,
    tiny_gemma,
    tiny_gpt2,
    tiny_llama,
    tiny_llama_classifier,
    tiny_mistral_classifier,
    tiny_modernbert,
    tiny_qwen2,
    tiny_roberta,
    tiny_xlm_roberta,
    train,
)

FAMILIES = {
    "bert": (tiny_bert, classification_rows),
    "roberta": (tiny_roberta, classification_rows),
    "distilbert": (tiny_distilbert, classification_rows),
    "albert": (tiny_albert, classification_rows),  # embedding_size 8 != hidden_size 16
    "electra": (tiny_electra, classification_rows),  # embedding_size 8 != hidden_size 16
    "gpt2": (tiny_gpt2, lm_rows),  # causal LM, output projection tied to the input embedding
    "deberta-v2": (tiny_deberta_v2, classification_rows),  # relative attention, no absolute position input
    "modernbert": (tiny_modernbert, classification_rows),  # rotary, local and global attention
    "xlm-roberta": (tiny_xlm_roberta, classification_rows),
    "llama-classifier": (tiny_llama_classifier, classification_rows),  # last non-padding token's logits
    "llama": (tiny_llama, lm_rows),
    "qwen2": (tiny_qwen2, lm_rows),
    "mistral-classifier": (tiny_mistral_classifier, classification_rows),
    "gemma": (tiny_gemma, lm_rows),  # embedding output scaled by sqrt(hidden size)
}


@pytest.mark.parametrize("family", FAMILIES)
def test_fgm_gradient_matches_the_hand_computation_for_each_family(tmp_path, family):
    make_model, make_rows = FAMILIES[family]
    assert_fgm_matches_the_hand_computation(tmp_path, make_model(), collate(make_rows(4)))


@pytest.mark.parametrize("family", FAMILIES)
def test_pgd_trains_each_family_and_leaves_no_hook(tmp_path, family):
    make_model, make_rows = FAMILIES[family]
    model = make_model()
    trainer = train(model, tmp_path, make_rows(8), adv_method="pgd", adv_epsilon=0.3)
    embedding = trainer.model.get_input_embeddings()
    assert not embedding._forward_hooks
    assert max_weight_difference(model, trainer.model) > 1e-3
    logs = trainer.state.log_history[0]
    assert logs["adv_loss"] > 0 and 0 < logs["adv_delta_norm"] <= 0.3 + 1e-6


def test_gemma_perturbs_the_scaled_embedding_output(tmp_path, added):
    """Gemma's embedding module returns sqrt(hidden) x its weight rows: the hook adds delta after that scaling, so
    ||delta|| = eps on the scaled output, and the hand computation above perturbs the same tensor."""
    model, inputs = tiny_gemma(), collate(lm_rows(4))
    embedding = model.get_input_embeddings()
    output = embedding(inputs["input_ids"])
    torch.testing.assert_close(output, embedding.weight[inputs["input_ids"]] * 16**0.5)
    AdversarialTrainer(model=model, args=arguments(tmp_path, adv_method="fgm", adv_epsilon=0.3)).training_step(
        model, inputs
    )
    mask = inputs["attention_mask"].bool()
    torch.testing.assert_close(added[-1].norm(dim=-1).pow(2).sum(dim=1).sqrt(), torch.full((4,), 0.3))
    assert (added[-1][~mask] == 0).all()


def test_frozen_embedding_stays_unchanged_while_the_rest_trains(tmp_path):
    model = tiny_bert()
    model.get_input_embeddings().weight.requires_grad_(False)
    assert_fgm_matches_the_hand_computation(tmp_path, model, collate(classification_rows(4)))
    trainer = train(model, tmp_path, classification_rows(8), adv_method="fgm", adv_epsilon=0.3)
    trained = trainer.model
    assert torch.equal(trained.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert not torch.equal(trained.classifier.weight, model.classifier.weight)
    assert trainer.state.log_history[0]["adv_delta_norm"] == pytest.approx(0.3)


def test_tied_output_projection_is_not_perturbed_and_stays_tied(tmp_path):
    model = tiny_gpt2()
    assert model.lm_head.weight is model.get_input_embeddings().weight
    # The hand computation perturbs only the input embedding's output; equality shows the head saw no perturbation.
    assert_fgm_matches_the_hand_computation(tmp_path, model, collate(lm_rows(4)))
    trained = train(model, tmp_path, lm_rows(8), adv_method="fgm", adv_epsilon=0.3).model
    assert trained.lm_head.weight is trained.get_input_embeddings().weight


class VocabularySizedOps(TorchDispatchMode):
    """Records every op that reads the embedding weight or produces a tensor of its shape."""

    def __init__(self, weight):
        super().__init__()
        self.weight = weight
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        reads_weight = any(
            isinstance(t, torch.Tensor) and t.data_ptr() == self.weight.data_ptr() for t in tree_leaves((args, kwargs))
        )
        vocabulary_sized = any(isinstance(t, torch.Tensor) and t.shape == self.weight.shape for t in tree_leaves(out))
        if reads_weight or vocabulary_sized:
            self.ops.append(func.__name__.split(".")[0])
        return out


@pytest.mark.parametrize(
    "adv,forwards,parameter_passes",
    [
        ({}, 1, 1),
        ({"adv_method": "fgm"}, 2, 2),
        ({"adv_method": "pgd", "adv_k": 3}, 4, 2),
        ({"adv_method": "pgd", "adv_k": 3, "adv_init_mag": 0.05}, 5, 2),
        ({"adv_method": "freelb", "adv_k": 3, "adv_init_mag": 0.0}, 4, 4),
        ({"adv_method": "fgm", "adv_scope": "vocab"}, 2, 2),
        ({"adv_method": "awp"}, 2, 2),
    ],
    ids=["none", "fgm", "pgd", "pgd-random-start", "freelb", "fgm-vocab", "awp"],
)
def test_no_vocabulary_sized_copy_and_no_weight_gradient_in_intermediate_passes(
    tmp_path, adv, forwards, parameter_passes
):
    model = tiny_bert()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **adv))
    with VocabularySizedOps(model.get_input_embeddings().weight) as recorded:
        trainer.training_step(model, collate(classification_rows(4)))
    # The weight is only ever read by the embedding lookup: no clone, no in-place edit, no backup.
    assert recorded.ops.count("embedding") == forwards
    # Vocabulary-sized tensors are only the weight's own gradients: one per pass that trains the parameters,
    # accumulated into `.grad` (detach for the first, add_ for the next).
    assert recorded.ops.count("embedding_dense_backward") == parameter_passes
    assert sorted(set(recorded.ops) - {"embedding", "embedding_dense_backward", "detach", "add_"}) == []
    assert recorded.ops.count("add_") == parameter_passes - 1


@pytest.mark.parametrize("adv,forwards", [({"adv_method": "r3f"}, 3), ({"adv_method": "smart", "adv_k": 2}, 5)])
def test_smart_and_r3f_build_the_weight_gradient_once_per_parameter_pass(tmp_path, adv, forwards):
    model = tiny_bert()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **adv))
    with VocabularySizedOps(model.get_input_embeddings().weight) as recorded:
        trainer.training_step(model, collate(classification_rows(4)))
    # The clean forward whose graph is dropped, the ascent forwards, the perturbed one and the clean one again.
    assert recorded.ops.count("embedding") == forwards
    # Two backwards train the parameters, the perturbed one and the clean one: one weight gradient from each,
    # accumulated into `.grad` (detach for the first, add_ for the second); the ascent passes build none.
    assert recorded.ops.count("embedding_dense_backward") == 2
    assert sorted(set(recorded.ops) - {"embedding", "embedding_dense_backward", "detach", "add_"}) == []
    assert recorded.ops.count("add_") == 1
