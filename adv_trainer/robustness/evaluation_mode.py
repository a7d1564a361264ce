"""The model as `Trainer.evaluate` sees it, for every robustness evaluation of a trainer.

`Trainer.evaluation_loop` does more than `model.eval()`: it puts an optimizer that has an evaluation mode into it
(schedule-free optimizers evaluate at their averaged weights, not the ones they step from) and, outside training,
casts the model for `fp16_full_eval`/`bf16_full_eval`. An evaluation that skips any of this scores other weights than
`evaluate()` does, so that at eps = 0 the robust metric would not equal the clean one.
"""

import contextlib

import torch

__all__ = ["evaluation_mode"]


@contextlib.contextmanager
def evaluation_mode(trainer):
    """Yields `trainer.model` prepared as `Trainer.evaluation_loop` prepares it; its train/eval mode is restored.

    As in `Trainer.evaluate`, the optimizer is left in its evaluation mode (the next training step switches it back)
    and a full-fp16/bf16-eval cast stays.
    """
    args, model = trainer.args, trainer.model
    if not trainer.is_in_train:
        if args.fp16_full_eval:
            model = model.to(dtype=torch.float16, device=args.device)
        elif args.bf16_full_eval:
            model = model.to(dtype=torch.bfloat16, device=args.device)
    was_training = model.training
    model.eval()
    if callable(getattr(trainer.optimizer, "eval", None)):
        trainer.optimizer.eval()
    try:
        yield model
    finally:
        model.train(was_training)
