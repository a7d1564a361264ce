"""Which positions form one sequence: multiple-choice layouts and padding-free packed rows."""

import re

import pytest
import torch

from adv_trainer.sequence_layout import as_embedding_layout, packed_sequences

PACKED = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2, 2]])  # sequences of 3, 2 and 4 tokens packed into one row
IDS = torch.arange(10, 19)[None]


def test_multiple_choice_layout_is_flattened_to_the_embedding_rows():
    mask = torch.arange(24).view(2, 3, 4)  # (examples, choices, T)
    assert torch.equal(as_embedding_layout(mask, "attention_mask", (6, 4, 16)), mask.view(6, 4))


@pytest.mark.parametrize("shape", [(2, 12), (4, 3, 4), (24,)])
def test_a_layout_that_does_not_flatten_to_the_embedding_rows_is_refused(shape):
    with pytest.raises(
        ValueError,
        match=re.escape(f"`attention_mask` has shape {shape} but the input embedding's output has shape (6, 4, 16)"),
    ):
        as_embedding_layout(torch.zeros(shape), "attention_mask", (6, 4, 16))


@pytest.mark.parametrize("start", [0, 2])  # RoBERTa-like models number positions from padding_idx + 1 = 2
def test_sequences_start_wherever_position_ids_do_not_step_by_one(start):
    position_ids = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]]) + start
    assert torch.equal(packed_sequences({"input_ids": IDS, "position_ids": position_ids}), PACKED)


def test_the_collators_boundary_tensors_take_precedence_over_position_ids():
    # Position ids that step by 1 across the second boundary: only the collator's tensors see it.
    position_ids = torch.tensor([[0, 1, 2, 0, 1, 2, 3, 4, 5]])
    seq_idx = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2, 2]], dtype=torch.int32)
    cu_seq_lens = torch.tensor([0, 3, 5, 9], dtype=torch.int32)
    for boundaries in ({"seq_idx": seq_idx}, {"cu_seq_lens_q": cu_seq_lens}, {"cu_seq_lens_k": cu_seq_lens}):
        assert torch.equal(packed_sequences({"input_ids": IDS, "position_ids": position_ids, **boundaries}), PACKED)


def test_rows_of_one_sequence_or_with_an_attention_mask_are_not_packed():
    restarting = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    assert packed_sequences({"input_ids": IDS, "position_ids": torch.arange(9)[None]}) is None
    assert packed_sequences({"input_ids": IDS}) is None
    # transformers detects packing only without an attention mask; with one, the row is one (oddly numbered) sequence.
    mask = torch.ones(1, 9, dtype=torch.long)
    assert packed_sequences({"input_ids": IDS, "position_ids": restarting, "attention_mask": mask}) is None


def test_packed_rows_are_numbered_across_rows():
    position_ids = torch.tensor([[0, 1, 0, 1], [0, 0, 1, 2]])
    groups = packed_sequences({"input_ids": torch.ones(2, 4, dtype=torch.long), "position_ids": position_ids})
    assert torch.equal(groups, torch.tensor([[0, 0, 1, 1], [2, 3, 3, 3]]))


def test_a_packed_row_without_position_ids_is_refused():
    with pytest.raises(
        ValueError, match="no `position_ids`.*`DataCollatorWithFlattening\\(return_position_ids=True\\)`"
    ):
        packed_sequences({"input_ids": IDS, "cu_seq_lens_q": torch.tensor([0, 3, 5, 9])})


def test_multiple_choice_position_ids_are_not_read_as_packing():
    ids = torch.ones(2, 3, 4, dtype=torch.long)  # (examples, choices, T), no attention mask
    assert packed_sequences({"input_ids": ids, "position_ids": torch.arange(4).expand(2, 3, 4)}) is None
