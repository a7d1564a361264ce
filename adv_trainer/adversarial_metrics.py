"""The adversarial statistics logged beside the Trainer's `loss`."""

import torch

__all__ = ["AdversarialMetrics"]


class AdversarialMetrics:
    """Sums over the micro-batches since the last log, kept on the device so that no step waits for the host.

    Logged, like the Trainer's `loss`, per optimizer step and averaged over processes:
    - `adv_loss`: the adversarial loss (FreeLB: the mean over its K passes; SMART/R3F: the divergence regulariser),
      scaled like the clean loss, averaged over the optimizer steps that ran the adversarial passes (steps before
      `adv_start_step` do not count);
    - `adv_delta_norm`: the mean norm of the final perturbation per group (example, or micro-batch in vocab scope;
      AWP: ||V|| / ||W|| over the perturbed weights);
    - `adv_skipped`: groups whose ascent step was dropped because their gradient was not finite (summed);
    - `adv_epsilon`: the radius the last of these steps used (`adv_epsilon_warmup` makes it grow), for the methods
      that have one, like the Trainer's `learning_rate`.

    Each divisor is a count summed by the same reduction as its statistic, so the averages are right whether
    accelerate reduces over processes (DDP) or not (one process, or processes that each train their own copy).
    """

    def __init__(self):
        self._sums = None  # [loss, delta norm sum, delta norm count, skipped, optimizer steps with passes]
        self._last_step = None
        self._epsilon = None

    def update(self, adversarial_loss, delta_norms, skipped, global_step, epsilon=None):
        """Adds one micro-batch; `adversarial_loss` is its scaled share of the optimizer step `global_step`, `epsilon`
        the radius it used (None for a method without one)."""
        self._epsilon = epsilon
        new_step = global_step != self._last_step  # the first micro-batch of an optimizer step
        self._last_step = global_step
        values = torch.stack(
            [
                adversarial_loss.float(),
                delta_norms.sum(),
                delta_norms.new_tensor(float(delta_norms.numel())),
                skipped.float(),
                delta_norms.new_tensor(float(new_step)),
            ]
        )
        self._sums = values if self._sums is None else self._sums + values

    def pop(self, accelerator):
        """The averages since the last call, reduced over processes; {} when no adversarial pass ran."""
        self._last_step = None  # logs fall between optimizer steps
        if self._sums is None:
            return {}
        sums = accelerator.reduce(self._sums, reduction="sum")
        self._sums = None
        loss, norm_sum, norm_count, skipped, steps = sums.tolist()
        epsilon = {} if self._epsilon is None else {"adv_epsilon": self._epsilon}
        return {
            # Both sums run over the same processes: the mean per process and optimizer step.
            "adv_loss": loss / max(steps, 1.0),
            "adv_delta_norm": norm_sum / max(norm_count, 1.0),
            "adv_skipped": int(skipped),
        } | epsilon
