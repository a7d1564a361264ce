"""A forward hook that adds a perturbation to the output of the model's input embedding (the NEFTune pattern)."""

import torch
from torch import nn

__all__ = ["EmbeddingOutputHook", "input_embedding"]


def input_embedding(model: nn.Module) -> nn.Module:
    """The module whose output is perturbed: `get_input_embeddings()` of an unwrapped (non-DDP) model.

    Raises ValueError when the model has no such method, it returns something that is not a module, or it raises
    NotImplementedError (transformers' `PreTrainedModel` does when no attribute has a known embedding name).
    """
    get_embeddings = getattr(model, "get_input_embeddings", None)
    try:
        embedding = get_embeddings() if callable(get_embeddings) else None
        found = f"returned {embedding!r}"
    except NotImplementedError as error:  # transformers' fallback when it finds no embedding by its usual names
        embedding, found = None, f"raised NotImplementedError: {error}"
    if not isinstance(embedding, nn.Module):
        raise ValueError(
            f"{type(model).__name__} has no input embedding module (`get_input_embeddings()` {found}); "
            "adversarial training perturbs that module's output. Implement `get_input_embeddings()`."
        )
    return embedding


class EmbeddingOutputHook:
    """While entered, the forward of `embedding` that a pass asked for returns `output + delta`.

    `delta` is a `(B, T, E)` float32 tensor set before each pass by `start_pass`. Left at `None`, the hook creates a
    zero leaf that requires grad and stores it in `delta`: the backward of that pass then yields dL/d(output) in
    `delta.grad`, even when the embedding weight is frozen.

    A pass's forward is the one that runs with gradients enabled (`start_pass(delta)`), or the one under
    `torch.no_grad()` for a pass started with `start_pass(delta, without_gradients=True)` (an evaluation's final
    forward). Every other forward of the embedding inside the pass sees the clean output: a reference model that is
    the policy with its adapters disabled (TRL's `DPOTrainer` with `ref_model=None`, under `no_grad`), a metric's
    forward beside the loss's (TRL's `SFTTrainer`). The hook refuses a second forward of the pass's kind within one
    pass (an encoder-decoder model's shared embedding, say), and the trainer refuses a pass that never called it
    (`inputs_embeds`).
    """

    def __init__(self, embedding: nn.Module):
        self.embedding = embedding
        self.delta = None
        self.calls = 0
        self._without_gradients = False
        self._handle = None

    def __enter__(self):
        self._handle = self.embedding.register_forward_hook(self._add_delta)
        return self

    def __exit__(self, *exc_info):
        self._handle.remove()

    def start_pass(self, delta, without_gradients=False):
        self.delta = delta
        self.calls = 0
        self._without_gradients = without_gradients

    def _add_delta(self, module, args, output):
        if torch.is_grad_enabled() == self._without_gradients:
            # Not the pass's forward: a reference model's or a metric's forward beside the loss's is not attacked.
            return output
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError(
                f"The input embedding {type(module).__name__} ran twice in one forward pass (an encoder-decoder "
                "model's shared embedding does); the perturbation would be added to both calls. Adversarial "
                "training supports models that embed their input once per pass (further forwards under "
                "`torch.no_grad()`, such as a reference model's or a metric's, see the clean embeddings)."
            )
        if self.delta is None:
            self.delta = torch.zeros(output.shape, device=output.device, requires_grad=True)  # (B, T, E)
        return output + self.delta.to(output.dtype)
