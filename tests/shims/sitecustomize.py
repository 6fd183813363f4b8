"""Test-only adjustments for multi-process training on CPU, put on PYTHONPATH by tests/distributed.py (never
imported by medix itself). Each one is switched on by an environment variable the test sets.

- MEDIX_TEST_NO_SHM=1: DeepSpeed's CPU accelerator compiles a shared-memory all-reduce kernel with g++ the
  first time a process group starts (~107 s here). The kernel only speeds collectives up; without it
  DeepSpeed uses gloo through torch.distributed, which is what is under test.
- MEDIX_TEST_FSDP_ON_CPU=1: accelerate takes its FSDP branch only for GPU process groups; on CPU a
  `distributed_type: FSDP` launch would silently run plain DDP. The relabel makes a CPU state with an FSDP
  plugin an FSDP state, so FSDP2's `fully_shard` really shards the policy over gloo.
"""

import os

if os.environ.get("MEDIX_TEST_NO_SHM") == "1":
    import deepspeed.comm.torch as _ds_torch

    _ds_torch.build_shm_op = lambda: None

if os.environ.get("MEDIX_TEST_FSDP_ON_CPU") == "1":
    from accelerate import state as _state
    from accelerate.utils import DistributedType

    _init = _state.AcceleratorState.__init__

    def _fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
        _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            _state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    _state.AcceleratorState.__init__ = _fsdp_on_cpu
