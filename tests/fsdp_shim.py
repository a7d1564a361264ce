"""Test-only: FSDP on a multi-CPU launch, which accelerate enables only for accelerators.

accelerate's `AcceleratorState` turns a `fsdp_plugin` into `DistributedType.FSDP` for GPU-like devices alone; on CPUs
(`MULTI_CPU`, gloo) it keeps the plugin unused and the Trainer runs plain DDP. The tests switch the state to FSDP
after accelerate has set it up, as it would on GPUs, so that the model is really sharded over gloo (FSDP2,
`fully_shard`, works on CPU in torch 2.13).
"""

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType


def enable_fsdp_on_cpu():
    """Makes every `AcceleratorState` created after this call with a `fsdp_plugin` on CPUs use it."""
    original = AcceleratorState.__init__

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            # What accelerate does for MULTI_GPU with a plugin (accelerate/state.py, AcceleratorState.__init__).
            if self._mixed_precision != "no":
                fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = fsdp_plugin
            self.distributed_type = DistributedType.FSDP
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    AcceleratorState.__init__ = init
