"""Which positions of the embedding output belong to which sequence: the groups δ is normalised and projected in.

The input embedding's output has shape `(B, T, E)`. A batch's `attention_mask` and `input_ids` are read in that
`(B, T)` layout, flattening their leading dimensions when the model does (multiple choice: `(examples, choices, T)`
becomes `(examples·choices, T)`). Each row is one sequence, except in a padding-free packed batch
(transformers' `DataCollatorWithFlattening`: no `attention_mask`, `position_ids` restarting for each sequence),
where each packed sequence is its own group, so packed and padded batches get the same δ per sequence.
"""

import math

import torch

__all__ = [
    "as_embedding_layout",
    "check_packing_is_honoured",
    "example_count",
    "packed_sequences",
    "position_mask",
]

# The collator's sequence-boundary tensors (`return_seq_idx`, `return_flash_attn_kwargs`), in order of preference.
BOUNDARY_KEYS = ("seq_idx", "cu_seq_lens_q", "cu_seq_lens_k")


def as_embedding_layout(tensor, name, shape):
    """`tensor` (e.g. `(examples, choices, T)`) viewed as `(B, T)` of an embedding output of shape `(B, T, E)`.

    Raises ValueError when `tensor` is not a reshape of that layout by flattening its leading dimensions.
    """
    if tensor.dim() >= 2 and tensor.shape[-1] == shape[1] and math.prod(tensor.shape[:-1]) == shape[0]:
        return tensor.reshape(shape[0], shape[1])
    raise ValueError(
        f"`{name}` has shape {tuple(tensor.shape)} but the input embedding's output has shape {tuple(shape)}; "
        f"adversarial training needs `{name}` laid out as the embedding's (sequences, tokens), or with leading "
        "dimensions that flatten to its sequences as multiple choice's (examples, choices, tokens) do."
    )


def position_mask(inputs, shape, device):
    """The `(B, T)` mask of positions that may be perturbed: the attention mask, or all ones without one."""
    mask = inputs.get("attention_mask")
    if mask is None:
        return torch.ones(shape[:2], device=device)
    return as_embedding_layout(mask, "attention_mask", shape)


def example_count(inputs, shape):
    """How many predictions a sequence-level head makes for the batch: its packed sequences, else its leading
    dimension (multiple choice: examples, not examples·choices); `shape` is the embedding output's."""
    groups = packed_sequences(inputs)
    if groups is not None:
        return int(groups.max()) + 1
    leading = [inputs[key].shape[0] for key in ("input_ids", "attention_mask") if inputs.get(key) is not None]
    return leading[0] if leading else shape[0]


def packed_sequences(inputs):
    """`(B, T)` long: the sequence of each position, numbered in row-major order, for a padding-free packed batch;
    None when every row is one sequence.

    A batch is packed, as transformers' causal masks decide (`masking_utils.find_packed_sequence_indices`), when it
    has no `attention_mask` and its sequences do not start at row starts only. Boundaries come from `seq_idx` or
    `cu_seq_lens_q/k` when present, else from `position_ids`: a new sequence wherever they do not step by 1 (whatever
    they start at: 0, or 2 for RoBERTa-like models). A packed batch without `position_ids` is refused: the model
    would attend across its sequences.
    """
    if inputs.get("attention_mask") is not None or inputs.get("input_ids") is None or inputs["input_ids"].dim() != 2:
        return None  # packing is a (rows, tokens) layout without a mask
    input_ids, position_ids = inputs["input_ids"], inputs.get("position_ids")
    starts = torch.zeros(input_ids.shape, dtype=torch.bool, device=input_ids.device)  # (B, T)
    key = next((key for key in BOUNDARY_KEYS if inputs.get(key) is not None), None)
    if key == "seq_idx":
        seq_idx = inputs[key].reshape(input_ids.shape)
        starts[:, 1:] = seq_idx[:, 1:] != seq_idx[:, :-1]
    elif key is not None:
        cumulative = inputs[key].flatten().long()  # (sequences + 1,) offsets into the flattened batch
        starts.view(-1)[cumulative[:-1]] = True
    elif position_ids is not None:
        position_ids = position_ids.expand(input_ids.shape)
        starts[:, 1:] = position_ids[:, 1:] - position_ids[:, :-1] != 1
    starts[:, 0] = True
    if starts[:, 1:].sum() == 0:
        return None
    if position_ids is None:
        raise ValueError(
            f"The batch packs several sequences into one row (`{key}` marks their boundaries) but has no "
            "`position_ids`: the model would attend across the packed sequences. Pass `position_ids` that restart "
            "for each sequence (`DataCollatorWithFlattening(return_position_ids=True)`), or pad the batch instead."
        )
    return starts.flatten().cumsum(0).view(input_ids.shape) - 1


@torch.no_grad()
def check_packing_is_honoured(model, inputs, groups):
    """Refuses a packed batch whose model does not attend per packed sequence.

    Causal LMs of transformers 5.x detect packing from the position ids and mask attention per sequence, when
    called without a cache (the Trainer sets `use_cache=False`), as BERT does from transformers 5.25; encoders that
    ignore `position_ids` in their mask (BERT before 5.25) do not, so a packed row is not the padded batch even
    unperturbed. Checked on the batch itself, in one forward of two rows: the first row's first two sequences, and
    the same with the first sequence's tokens replaced; the last layer's hidden states of the second sequence must
    not change. Masked attention makes them equal to rounding, whatever the dtype. The model runs in eval mode
    (restored afterwards).
    Returns False when nothing could be checked (the first row holds one sequence, or one repeated token).
    """
    first_row = groups[0] - groups[0, 0]
    start, end = int((first_row == 0).sum()), int((first_row <= 1).sum())
    input_ids = inputs["input_ids"][0, :end]
    first, second = input_ids[:start], input_ids[start:end]
    replaced = torch.where(first == input_ids.max(), input_ids.min(), input_ids.max())
    if start == end or torch.equal(replaced, first):
        return False
    probe_ids = torch.stack([input_ids, torch.cat([replaced, second])])  # (2, end)
    position_ids = inputs["position_ids"].expand(groups.shape)[:1, :end].expand(2, end)
    was_training = model.training
    model.eval()
    try:
        hidden = model(input_ids=probe_ids, position_ids=position_ids, output_hidden_states=True).hidden_states[-1]
    finally:
        model.train(was_training)
    unchanged, changed = hidden[0, start:].float(), hidden[1, start:].float()
    if not torch.allclose(unchanged, changed, rtol=0, atol=1e-5 * unchanged.abs().max().item()):
        raise ValueError(
            f"{type(model).__name__} does not attend per packed sequence: with `position_ids` restarting and no "
            "`attention_mask`, the sequences packed into a row see each other (bidirectional encoders ignore "
            "`position_ids` in their mask; causal LMs do so when called with `use_cache=True`), so the packed row "
            "is not the padded batch. Pad the batch instead of packing it (no `DataCollatorWithFlattening`), or "
            "leave `use_cache` False."
        )
    return True
