"""Reads a model's last hidden states during a forward pass without changing what its caller sees (CreAT)."""

import inspect

import torch.nn.functional as F
from torch import nn

__all__ = ["LastHiddenState", "representation_similarity"]


def representation_similarity(perturbed, clean, mask):
    """Per example, in float32: the cosine similarity between `perturbed` and `clean` hidden states `(B, T, H)` at
    each position, summed over the positions where `mask` `(B, T)` is 1 (CreAT's deviation measure, Wu et al. 2023).
    Shape `(B,)`. Gradients flow through both arguments; detach `clean` to hold it fixed."""
    if perturbed.shape[:2] != mask.shape:
        raise ValueError(
            f"CreAT compares the last hidden states position by position, but they have shape "
            f"{tuple(perturbed.shape)} and the attention mask {tuple(mask.shape)}; it needs one hidden state per "
            "input position."
        )
    cosine = F.cosine_similarity(perturbed.float(), clean.float(), dim=-1)  # (B, T)
    return (cosine * mask).sum(dim=1)


class LastHiddenState:
    """While entered, every forward of `model` also stores `hidden_states[-1]` of its output in `value`.

    The model is asked for its hidden states (`output_hidden_states=True`, added to the call's keyword arguments by
    a forward pre-hook), and a forward hook takes the last one and returns the output the caller would have had
    without them: the user's `compute_loss` and `compute_loss_func` see the same inputs and the same output (the
    `hidden_states` field is kept only when the call or the config asked for it). For the models of `transformers`,
    `hidden_states[-1]` is the contextualised representation the head reads: the last encoder layer's output
    (BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA), after the final LayerNorm for GPT-2. Shape `(B, T, H)`.

    Asking instead of hooking the last layer works for any model that implements `output_hidden_states`, including
    those whose last layer is a shared module run several times (ALBERT) or whose representation is normalised
    after it (GPT-2).
    """

    def __init__(self, model: nn.Module):
        if not _accepts(model, "output_hidden_states"):
            raise ValueError(
                f"CreAT reads the last hidden states of the model, but {type(model).__name__}.forward takes no "
                "`output_hidden_states` argument. Use a model that returns `hidden_states` (the transformers models "
                "do), or another `adv_method`."
            )
        self.model = model
        self.value = None
        self._hide = False
        self._handles = []

    def __enter__(self):
        self._handles = [
            self.model.register_forward_pre_hook(self._ask, with_kwargs=True),
            self.model.register_forward_hook(self._take, with_kwargs=True),
        ]
        return self

    def __exit__(self, *exc_info):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _ask(self, module, args, kwargs):
        requested = kwargs.get("output_hidden_states")
        if requested is None:
            requested = getattr(getattr(module, "config", None), "output_hidden_states", False)
        self._hide = not requested
        return args, {**kwargs, "output_hidden_states": True}

    def _take(self, module, args, kwargs, output):
        hidden_states = output.get("hidden_states") if isinstance(output, dict) else None
        if not hidden_states:
            raise ValueError(
                f"CreAT reads the last hidden states of the model, but {type(module).__name__} returned "
                f"{type(output).__name__} without `hidden_states` when asked with `output_hidden_states=True`. "
                "It needs a model output with that field (`return_dict=True`)."
            )
        self.value = hidden_states[-1]
        if not self._hide:
            return output
        # ModelOutput keeps a field set to None in its dict; a new output without it is what the caller expects.
        return type(output)(**{key: value for key, value in output.items() if key != "hidden_states"})


def _accepts(model, name):
    parameters = inspect.signature(model.forward).parameters.values()
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
