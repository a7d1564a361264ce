"""`EmbeddingOutputHook`: only the forward a pass asked for is perturbed."""

import pytest
import torch
from torch import nn

from adv_trainer.embedding_hook import EmbeddingOutputHook

IDS = torch.tensor([[1, 2, 3]])


def embedding():
    torch.manual_seed(0)
    return nn.Embedding(5, 4)


def test_a_forward_without_gradients_inside_a_training_pass_sees_the_clean_output():
    layer, delta = embedding(), torch.full((1, 3, 4), 0.5)
    clean = layer.weight[IDS].detach()
    with EmbeddingOutputHook(layer) as hook:
        hook.start_pass(delta)
        perturbed = layer(IDS)
        with torch.no_grad():
            reference = layer(IDS)  # a reference model or a metric beside the loss
    assert torch.equal(perturbed.detach(), clean + 0.5)
    assert torch.equal(reference, clean)
    assert hook.calls == 1


def test_a_pass_without_gradients_perturbs_its_no_grad_forward_only():
    layer, delta = embedding(), torch.full((1, 3, 4), 0.5)
    clean = layer.weight[IDS].detach()
    with EmbeddingOutputHook(layer) as hook:
        hook.start_pass(delta, without_gradients=True)
        with torch.no_grad():
            perturbed = layer(IDS)
        beside = layer(IDS)
    assert torch.equal(perturbed, clean + 0.5)
    assert torch.equal(beside.detach(), clean)


def test_a_second_forward_of_the_pass_kind_is_refused():
    layer = embedding()
    with EmbeddingOutputHook(layer) as hook:
        hook.start_pass(None)
        layer(IDS)
        with pytest.raises(RuntimeError, match="ran twice in one forward pass"):
            layer(IDS)
