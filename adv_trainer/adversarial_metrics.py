"""The adversarial statistics logged beside the Trainer's `loss`."""

import torch

__all__ = ["AdversarialMetrics"]


class AdversarialMetrics:
    """Sums over the micro-batches since the last log, kept on the device so that no step waits for the host.

    Logged, like the Trainer's `loss`, per optimizer step and averaged over processes:
    - `adv_loss`: the adversarial loss (FreeLB: the mean over its K passes; SMART/R3F: the divergence regulariser),
      scaled like the clean loss;
    - `adv_delta_norm`: the mean norm of the final perturbation per group (example, or micro-batch in vocab scope;
      AWP: ||V|| / ||W|| over the perturbed weights);
    - `adv_skipped`: groups whose ascent step was dropped because their gradient was not finite (summed).
    """

    def __init__(self):
        self._sums = None  # [loss, delta norm sum, delta norm count, skipped]

    def update(self, adversarial_loss, delta_norms, skipped):
        values = torch.stack(
            [
                adversarial_loss.float(),
                delta_norms.sum(),
                delta_norms.new_tensor(float(delta_norms.numel())),
                skipped.float(),
            ]
        )
        self._sums = values if self._sums is None else self._sums + values

    def pop(self, optimizer_steps, accelerator):
        """The averages since the last call, reduced over processes; {} when no adversarial pass ran."""
        if self._sums is None:
            return {}
        sums = accelerator.reduce(self._sums, reduction="sum")
        self._sums = None
        loss, norm_sum, norm_count, skipped = sums.tolist()
        return {
            "adv_loss": loss / accelerator.num_processes / max(optimizer_steps, 1),
            "adv_delta_norm": norm_sum / max(norm_count, 1.0),
            "adv_skipped": int(skipped),
        }
