"""Does a model's loss divide by `num_items_in_batch`, or is it a mean over its own micro-batch?

transformers' `Trainer` guesses from the forward signature: a `**kwargs` parameter means the loss is normalised by
`num_items_in_batch`. `BertForSequenceClassification` takes `**kwargs` but returns a plain mean, so the Trainer skips
the 1/GA scaling (doubling the gradient at GA=2) and multiplies the loss by the number of processes under DDP.
Here the loss itself is asked: computed with `num_items_in_batch` n and 2n, a normalised loss halves, a mean does not.
"""

import torch

__all__ = ["loss_divides_by_num_items"]

_TOLERANCE = 1e-3


def loss_divides_by_num_items(compute_loss, model, inputs, num_items_in_batch):
    """True if the loss divides by `num_items_in_batch`, False if it ignores it, None if this batch cannot tell.

    The two losses are computed without gradients, in eval mode (no dropout) and with the RNG state restored
    afterwards, so the probe changes nothing about training. A batch without labelled items cannot tell: a
    normalised loss is then 0 for both values (0/0 when the whole optimizer step has none).
    """
    n = num_items_in_batch
    if int(n) == 0:  # no labelled item in the whole step: both kinds of loss are 0/0
        return None
    was_training = model.training
    devices = [n.device] if torch.is_tensor(n) and n.device.type == "cuda" else []
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            single = float(compute_loss(model, dict(inputs), num_items_in_batch=n))
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
    raise ValueError(
        f"The training loss changed by a factor {ratio:.4g} when `num_items_in_batch` doubled; expected 0.5 (a loss "
        "normalised by it) or 1 (a per-batch mean). Set `trainer.loss_is_scaled_for_ga` to True or False to say which."
    )
