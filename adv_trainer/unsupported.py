"""Set-ups where the adversarial passes would give wrong results silently: refused with an error that says why."""

import functools

import torch.utils.checkpoint

from .adversarial_config import SMOOTHNESS_METHODS

__all__ = ["check_class_order", "check_parallelism", "check_model"]

# The methods FSDP2 cannot run, and why. Under FSDP2 a rank holds only its shard of each weight outside the model's
# forward, and every forward all-gathers the weights: all ranks must run the same number of forwards.
_FSDP2_METHODS = "Use an embedding-output method: fgm, pgd, freelb, smart, r3f or creat."
FSDP2_UNSUPPORTED = {
    "awp": "it perturbs each weight by its gradient scaled to the weight's norm, and a sharded weight's norm is a "
    f"sum over every rank's shard. {_FSDP2_METHODS}",
    "ascc": "its hull points are rows of the word-embedding weight read outside the model's forward, where the weight "
    f"is sharded across ranks. {_FSDP2_METHODS}",
    "dne": "its mixtures are rows of the word-embedding weight read outside the model's forward, where the weight is "
    f"sharded across ranks. {_FSDP2_METHODS}",
    "a2t": "the number of its forwards depends on each rank's words (the swaps it scores), and every FSDP2 forward "
    f"gathers the weights from all ranks, so the ranks would wait on each other's gathers. {_FSDP2_METHODS}",
}


def check_class_order(trainer_class, adversarial_class, base_class):
    """Refuses a class combining `adversarial_class` with a parent trainer whose `training_step` would never run.

    `AdversarialTrainer.training_step` does not call the parent's, so a trainer listed after it in the bases (TRL's
    `SFTTrainer` wraps its step in an activation-offloading context) must come first and call it through `super()`.
    """
    mro = trainer_class.__mro__
    for parent in mro[mro.index(adversarial_class) + 1 : mro.index(base_class)]:
        if "training_step" in vars(parent):
            _refuse(
                f"{trainer_class.__name__}'s class order, which puts {adversarial_class.__name__} before "
                f"{parent.__name__}",
                f"{parent.__name__}.training_step would never run. List {parent.__name__} first: "
                f"`class {trainer_class.__name__}({parent.__name__}, {adversarial_class.__name__})`.",
            )


def check_parallelism(trainer):
    """Refuses the parallel set-ups whose gradient reduction or parameter layout the passes do not handle yet."""
    if getattr(trainer, "is_deepspeed_enabled", False):
        _refuse(
            "DeepSpeed",
            "its engine scales and reduces gradients per `backward` call, and one training step here runs several. "
            "For sharded training use FSDP2 (`fsdp=True, fsdp_config={'fsdp_version': 2}`; docs/distributed.md).",
        )
    if getattr(trainer, "is_fsdp_enabled", False):
        version = getattr(trainer.accelerator.state.fsdp_plugin, "fsdp_version", 1)
        if version != 2:
            _refuse(
                f"FSDP{version}",
                "its `no_sync` keeps unsharded gradients only as a whole-model context, which the passes of one step "
                "cannot nest. Use FSDP2: `fsdp_config={'fsdp_version': 2}`.",
            )
        method = trainer.args.adv_method
        if method in FSDP2_UNSUPPORTED:
            _refuse(f"`adv_method='{method}'` under FSDP2", FSDP2_UNSUPPORTED[method])
    elif trainer.args.fsdp:
        # accelerate turns FSDP on only for accelerators: asked for elsewhere, the Trainer silently runs plain DDP.
        _refuse(
            f"`fsdp={trainer.args.fsdp!r}` where accelerate does not enable FSDP (no accelerator here)",
            "the Trainer would run plain DDP without saying so. Drop `fsdp` to train with DDP.",
        )
    if trainer.args.n_gpu > 1:
        _refuse(
            "nn.DataParallel (several GPUs in one process)",
            "each replica would run the embedding hook on its own slice of the batch. Launch with `torchrun` (DDP).",
        )
    for name in ("get_tp_size", "get_cp_size", "get_sp_size"):
        size = getattr(trainer, name, lambda: 1)()
        if size > 1:
            _refuse(f"{name[4:6].upper()} parallelism of size {size}", "the embedding output would be sharded.")


def check_model(model, args):
    """Refuses models whose forward the embedding hook cannot perturb correctly (adversarial methods only)."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        _refuse(
            f"the encoder-decoder model {type(model).__name__}",
            "its shared input embedding runs for the encoder and the decoder in one forward.",
        )
    if args.adv_method in SMOOTHNESS_METHODS and getattr(config, "problem_type", None) == "multi_label_classification":
        _refuse(
            f"{args.adv_method} on a multi-label classification",
            "its divergence is defined between softmax (single-label) or regression predictions.",
        )
    if args.optim in ("lomo", "adalomo"):
        _refuse(f"the {args.optim} optimizer", "it updates the weights inside `backward`, and a step runs several.")
    for module in model.modules():
        checkpoint = getattr(module, "_gradient_checkpointing_func", None)
        if getattr(module, "gradient_checkpointing", False) and _is_reentrant(checkpoint):
            _refuse(
                "reentrant gradient checkpointing",
                "it cannot compute the gradient with respect to the perturbation alone. Use "
                "`activation_checkpointing_kwargs={'use_reentrant': False}` (`gradient_checkpointing_kwargs` in "
                "transformers releases before `activation_checkpointing`).",
            )


def _is_reentrant(checkpoint):
    # torch.utils.checkpoint defaults to the reentrant implementation when `use_reentrant` is not given.
    if isinstance(checkpoint, functools.partial):
        return checkpoint.keywords.get("use_reentrant", True)
    return checkpoint is torch.utils.checkpoint.checkpoint


def _refuse(what, why):
    raise ValueError(f"AdversarialTrainer does not support {what}: {why}")
