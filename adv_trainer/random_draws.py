"""The random number generators' state at one moment, to run a forward again with the same dropout masks."""

import contextlib

import torch
from torch.utils.checkpoint import get_device_states, set_device_states

__all__ = ["RandomDraws"]


class RandomDraws:
    """torch's generator state for the CPU and for the devices that `tensors` (an iterable; other values in it are
    ignored) are on, taken at construction.

    `replayed()` sets the generators back to it for the forward run inside, and leaves them after as they were on
    entering, so that what follows draws exactly what it would have drawn without the replay. This is how
    `torch.utils.checkpoint` recomputes a forward (its `preserve_rng_state`), for a pass that is run once without its
    graph and again with it.
    """

    def __init__(self, tensors):
        tensors = [t for t in tensors if isinstance(t, torch.Tensor)]
        self.cpu_state = torch.get_rng_state()
        self.devices, self.device_states = get_device_states(*tensors)
        kinds = (t.device.type for t in tensors if t.device.type not in ("cpu", "meta"))
        self.device_type = next(kinds, None)

    @contextlib.contextmanager
    def replayed(self):
        with torch.random.fork_rng(devices=self.devices, device_type=self.device_type or "cuda"):
            torch.set_rng_state(self.cpu_state)
            if self.devices:
                set_device_states(self.devices, self.device_states, device_type=self.device_type)
            yield
