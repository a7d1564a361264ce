"""Does a model's loss divide by `num_items_in_batch`, or is it a mean over its own micro-batch?

transformers' `Trainer` guesses from the forward signature: a `**kwargs` parameter means the loss is normalised by
`num_items_in_batch`. `BertForSequenceClassification` takes `**kwargs` but returns a plain mean, so the Trainer skips
the 1/GA scaling (doubling the gradient at GA=2) and multiplies the loss by the number of processes under DDP.
Here the loss itself is asked: computed with `num_items_in_batch` n and 2n, a normalised loss halves, a mean does not.
"""

import contextlib
import random
import warnings

import numpy as np
import torch

__all__ = ["loss_divides_by_num_items"]

_TOLERANCE = 1e-3


def loss_divides_by_num_items(compute_loss, model, inputs, num_items_in_batch, fallback):
    """True if the loss divides by `num_items_in_batch`, False if it ignores it, None if this batch cannot tell.

    The two losses are computed without gradients and in eval mode (no dropout), each from the same state of every
    random generator the loss can draw from (Python's `random`, NumPy's global generator, torch's CPU and
    accelerator generators), which is restored afterwards: the probe changes nothing about training. A batch without
    labelled items cannot tell: a normalised loss is then 0 for both values (0/0 when the whole optimizer step has
    none). A loss that neither halves nor stays (one drawing from a generator not restorable here) cannot be
    measured: `fallback` (the Trainer's own assumption) is returned with a warning that says how to decide it.
    """
    n = num_items_in_batch
    if int(n) == 0:  # no labelled item in the whole step: both kinds of loss are 0/0
        return None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _replayable_random_state() as rewind:
            single = float(compute_loss(model, dict(inputs), num_items_in_batch=n))
            rewind()  # the second call draws the same numbers as the first
            double = float(compute_loss(model, dict(inputs), num_items_in_batch=2 * n))
    finally:
        model.train(was_training)
    if single != single:  # NaN: a mean over zero labelled items, which a normalised loss never returns
        return False
    if single == 0.0 and double == 0.0:
        return None
    ratio = double / single
    if abs(ratio - 0.5) < _TOLERANCE:
        return True
    if abs(ratio - 1.0) < _TOLERANCE:
        return False
    warnings.warn(
        f"The training loss changed by a factor {ratio:.4g} when `num_items_in_batch` doubled, with every random "
        "generator reset; expected 0.5 (a loss normalised by it) or 1 (a per-batch mean). Falling back to the "
        f"Trainer's own assumption that it is {'normalised' if fallback else 'a per-batch mean'}; set "
        "`trainer.loss_is_scaled_for_ga` to True or False to say which.",
        stacklevel=3,
    )
    return fallback


@contextlib.contextmanager
def _replayable_random_state():
    """Yields a function that resets every random generator to its state at entry; resets them again at exit."""
    saved = [
        (random.setstate, random.getstate()),
        (np.random.set_state, np.random.get_state()),
        (torch.set_rng_state, torch.get_rng_state()),
    ]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        saved.append((torch.cuda.set_rng_state_all, torch.cuda.get_rng_state_all()))
    accelerator = getattr(torch, "accelerator", None)
    device = accelerator.current_accelerator() if accelerator is not None and accelerator.is_available() else None
    if device is not None and device.type not in ("cuda", "cpu"):
        module = torch.get_device_module(device.type)
        if hasattr(module, "get_rng_state"):
            saved.append((module.set_rng_state, module.get_rng_state()))

    def rewind():
        for set_state, state in saved:
            set_state(state)

    try:
        yield rewind
    finally:
        rewind()
