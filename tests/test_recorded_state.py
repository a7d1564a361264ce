"""What a parent trainer records in `compute_loss` counts once per micro-batch, whatever its names."""

import collections

import pytest
import torch

from adv_trainer import AdversarialTrainer
from adv_trainer.recorded_state import unrecorded
from tests.tiny_models import classification_rows, tiny_bert, train


class RecordingTrainer(AdversarialTrainer):
    """Records in `compute_loss` the ways trainers do: counters, lists per mode, a device tensor, a deque."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        self.calls = getattr(self, "calls", 0) + 1  # created by the first call, which is the probe's
        self.rows = getattr(self, "rows", torch.zeros(())) + inputs["input_ids"].shape[0]
        self.by_mode = getattr(self, "by_mode", {"train": collections.defaultdict(list), "eval": {}})
        self.by_mode[mode]["batch"] = self.by_mode[mode].get("batch", []) + [inputs["input_ids"].shape[0]]
        self.recent = getattr(self, "recent", collections.deque(maxlen=3))
        self.recent.append(mode)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


@pytest.mark.parametrize(
    "adv",
    [
        {"adv_method": "fgm", "adv_epsilon": 0.3},
        {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_k": 3},
        {"adv_method": "r3f"},
        {"adv_method": "awp"},
    ],
    ids=lambda adv: adv["adv_method"],
)
def test_records_count_each_micro_batch_once_and_the_probe_not_at_all(tmp_path, adv):
    trainer = train(
        tiny_bert(), tmp_path, classification_rows(16), RecordingTrainer, gradient_accumulation_steps=2, **adv
    )
    assert trainer._loss_divides_by_num_items is False  # the probe did run
    assert trainer.calls == 4  # 2 steps x 2 micro-batches
    assert torch.equal(trainer.rows, torch.tensor(16.0))
    assert trainer.by_mode["train"]["batch"] == [4, 4, 4, 4] and trainer.by_mode["eval"] == {}
    assert isinstance(trainer.by_mode["train"], collections.defaultdict) and list(trainer.recent) == ["train"] * 3
    assert trainer.recent.maxlen == 3


def test_unrecorded_restores_plain_data_only():
    class Holder:
        pass

    holder, module = Holder(), torch.nn.Linear(2, 2)
    holder.count, holder.named, holder.module = 1, collections.namedtuple("Pair", "a b")(1, [2]), module
    holder.in_graph = torch.ones(2, requires_grad=True) * 2
    holder.untouched, holder.removed, holder.counter = ["a"], {"b": 1}, torch.zeros(())
    untouched = holder.untouched
    with unrecorded(holder):
        holder.count += 1
        holder.counter += 1  # in place: the device tensor is put back without being compared
        del holder.removed
        holder.named.b.append(3)
        holder.created = [1]
        holder.module = torch.nn.Linear(3, 3)  # an object: the block's change is kept
        holder.in_graph = holder.in_graph * 3  # a tensor in a graph is a computation, not a record: kept
    assert holder.count == 1 and holder.named == (1, [2]) and type(holder.named).__name__ == "Pair"
    assert (
        not hasattr(holder, "created") and holder.removed == {"b": 1} and torch.equal(holder.counter, torch.zeros(()))
    )
    assert holder.untouched is untouched
    assert holder.module is not module and holder.module.in_features == 3
    assert torch.equal(holder.in_graph, torch.full((2,), 6.0))
