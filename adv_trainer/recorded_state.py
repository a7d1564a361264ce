"""What a trainer records inside `compute_loss` counts once per micro-batch: from the clean pass, not the others.

Trainers that `AdversarialTrainer` is combined with record statistics inside `compute_loss`: TRL's `SFTTrainer`
appends token accuracy and entropy to `self._metrics[mode]` and adds the batch's tokens to `self._total_train_tokens`.
The adversarial passes and the loss-normalisation probe call `compute_loss` too, so without care every perturbed pass
would count the batch's tokens again and average perturbed accuracies into the clean ones, and the probe's eval-mode
calls would land in the eval metrics. Rather than knowing each trainer's names, `unrecorded` copies every attribute of
the trainer that holds plain data (numbers, strings, tensors that need no gradient, and lists, tuples, sets, deques
and dicts of them) before a block and puts the copies back after it, removing such attributes the block created.

Attributes holding other objects (the model, the optimizer, the accelerator and its gradient scaler, `self.state`)
are neither copied nor restored: what a parent records inside those during a non-clean pass is kept.
"""

import collections
import contextlib

import torch

__all__ = ["unrecorded"]

_SCALARS = (bool, int, float, complex, str, bytes, type(None))
_SEQUENCES = (list, tuple, set, frozenset, collections.deque)


@contextlib.contextmanager
def unrecorded(trainer):
    """Undoes, on exit, every change the block makes to `trainer`'s plain-data attributes."""
    saved = {name: _copy(value) for name, value in vars(trainer).items() if _is_record(value)}
    try:
        yield
    finally:
        current = vars(trainer)
        for name in [name for name, value in current.items() if name not in saved and _is_record(value)]:
            delattr(trainer, name)  # created inside the block
        for name, value in saved.items():
            if name not in current or _differs(current[name], value):
                setattr(trainer, name, value)  # what is unchanged keeps its identity


def _is_record(value):
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, torch.Tensor):
        return not value.requires_grad  # a tensor in a graph is part of a computation, not a record
    if isinstance(value, _SEQUENCES):
        return all(_is_record(item) for item in value)
    if isinstance(value, dict):
        return all(_is_record(key) and _is_record(item) for key, item in value.items())
    return False


def _differs(value, saved):
    # Tensors are not compared, which would wait for the device: they are put back whatever they hold.
    return not _is_record(value) or _holds_tensor(value) or _holds_tensor(saved) or value != saved


def _holds_tensor(value):
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_holds_tensor(item) for item in value.values())
    return isinstance(value, _SEQUENCES) and any(_holds_tensor(item) for item in value)


def _copy(value):
    """A copy that shares nothing mutable with `value`, of the same types (a defaultdict keeps its factory)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        copied = {key: _copy(item) for key, item in value.items()}
        if isinstance(value, collections.defaultdict):
            return collections.defaultdict(value.default_factory, copied)
        return type(value)(copied)
    if isinstance(value, collections.deque):
        return collections.deque((_copy(item) for item in value), maxlen=value.maxlen)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple takes its items as arguments
        return type(value)(*(_copy(item) for item in value))
    if isinstance(value, _SEQUENCES):
        return type(value)(_copy(item) for item in value)
    return value
