"""The divergences between clean and perturbed predictions that SMART, R3F (symmetric KL) and ASCC (KL) regularise."""

import torch
import torch.nn.functional as F

__all__ = ["kl_divergence", "prediction_divergence", "sequence_logits"]


def prediction_divergence(clean_logits, perturbed_logits):
    """Per example, in float32: the symmetric KL between the softmax predictions, KL(p||q) + KL(q||p) =
    sum_c (p_c - q_c)(log p_c - log q_c); for a regression's single output, the squared difference.

    Gradients flow through both arguments; detach `clean_logits` to hold the clean prediction fixed.
    """
    clean, perturbed = clean_logits.float(), perturbed_logits.float()
    if clean.shape[-1] == 1:
        return (clean - perturbed).pow(2).sum(dim=-1)
    log_p, log_q = F.log_softmax(clean, dim=-1), F.log_softmax(perturbed, dim=-1)
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1)


def kl_divergence(clean_logits, perturbed_logits):
    """Per example, in float32: KL(p||q) = sum_c p_c (log p_c - log q_c) from the clean prediction p to the perturbed
    one q (ASCC's, Dong et al. 2021); for a regression's single output, the squared difference.

    Gradients flow through both arguments; detach `clean_logits` to hold the clean prediction fixed.
    """
    clean, perturbed = clean_logits.float(), perturbed_logits.float()
    if clean.shape[-1] == 1:
        return (clean - perturbed).pow(2).sum(dim=-1)
    log_p, log_q = F.log_softmax(clean, dim=-1), F.log_softmax(perturbed, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def sequence_logits(outputs, batch_size):
    """The `(batch, classes)` logits of a model output, or an error saying why SMART/R3F cannot use it."""
    logits = outputs.get("logits") if isinstance(outputs, dict) else None
    if not isinstance(logits, torch.Tensor):
        raise ValueError(
            "SMART, R3F and ASCC regularise the model's predictions and need `logits` in its output; "
            f"{type(outputs).__name__} has none."
        )
    if logits.dim() != 2 or logits.shape[0] != batch_size:
        raise ValueError(
            f"SMART, R3F and ASCC regularise one prediction per example, logits of shape (batch, classes); got "
            f"{tuple(logits.shape)} for {batch_size} examples (each sequence of a packed row is one). Token-level "
            "heads, causal language models and sequence heads on packed rows are not supported: use fgm, pgd or "
            "freelb."
        )
    return logits
