"""The node shape a `medix train --plan` is made for: sharding, training processes, GPU memory.

    launch = launch_shape("configs/accelerate/zero3.yaml", gpus=8, gpu_gib=79.6, sharding=None)

Read from the accelerate config the run launches with (distributed_type, DeepSpeed zero_stage and offload
devices, FSDP sharding strategy, num_processes, num_machines), or from flags alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from medix.config import read_yaml
from medix.errors import MedixError

GIB = 2**30


@dataclass(frozen=True)
class Sharding:
    """Which training-state terms are divided over the N training processes (medix.train.plan counts them)."""

    name: str
    weights: bool
    grads: bool
    optimizer: bool
    offload_params: bool = False
    offload_optimizer: bool = False
    gathers_to_generate: bool = False  # TRL gathers ZeRO-3's full weights for generate() without vLLM


SHARDINGS = {
    "zero3": Sharding("DeepSpeed ZeRO-3", True, True, True, gathers_to_generate=True),
    "zero2": Sharding("DeepSpeed ZeRO-2", False, True, True),
    "zero1": Sharding("DeepSpeed ZeRO-1", False, False, True),
    "fsdp": Sharding("FSDP full shard", True, True, True),
    "none": Sharding("no sharding (DDP or one process)", False, False, False),
}


@dataclass(frozen=True)
class Launch:
    """The node shape: sharding, training processes (None = every GPU not given to the judge), GPU memory."""

    sharding: Sharding
    processes: int | None
    machines: int
    gpus_per_node: int
    gpu_gib: float
    source: str


def _count(data: dict, key: str, default: int, file) -> int:
    """A whole number >= 1 of an accelerate config (`default` when absent), or a MedixError naming file and key."""
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MedixError(f"{file}: {key} is {value!r}; give a whole number >= 1")
    return value


def launch_shape(accelerate_config: str | Path | None, gpus: int, gpu_gib: float, sharding: str | None) -> Launch:
    """The node shape from an accelerate config file and/or flags (`--sharding` wins over the file's)."""
    if gpus < 1 or not (math.isfinite(gpu_gib) and gpu_gib > 0):
        raise MedixError(f"--gpus ({gpus}) must be >= 1 and --gpu-memory ({gpu_gib} GiB) a number > 0")
    if sharding is not None and sharding not in SHARDINGS:
        raise MedixError(f"--sharding {sharding}: choose one of {', '.join(SHARDINGS)}")
    if accelerate_config is None:
        return Launch(SHARDINGS[sharding or "none"], None, 1, gpus, gpu_gib, "flags")
    if not Path(accelerate_config).is_file():
        raise MedixError(f"--accelerate-config {accelerate_config}: no such file (see configs/accelerate/)")
    data = read_yaml(accelerate_config)
    found = _accelerate_sharding(data, str(accelerate_config))
    processes = _count(data, "num_processes", gpus, accelerate_config)
    machines = _count(data, "num_machines", 1, accelerate_config)
    return Launch(SHARDINGS[sharding] if sharding else found, processes, machines, gpus, gpu_gib,
                  str(accelerate_config))


def _accelerate_sharding(data: dict, source: str) -> Sharding:
    kind = str(data.get("distributed_type", "NO")).upper()
    if kind == "DEEPSPEED":
        ds = data.get("deepspeed_config") or {}
        if ds.get("deepspeed_config_file"):
            raise MedixError(f"{source}: deepspeed_config_file is not read by --plan; give --sharding zero3/zero2")
        stage = int(ds.get("zero_stage", 0))
        base = {3: "zero3", 2: "zero2", 1: "zero1"}.get(stage, "none")
        return Sharding(SHARDINGS[base].name, *_fields(base),
                        offload_params=ds.get("offload_param_device", "none") not in (None, "none"),
                        offload_optimizer=ds.get("offload_optimizer_device", "none") not in (None, "none"),
                        gathers_to_generate=base == "zero3")
    if kind == "FSDP":
        fsdp = data.get("fsdp_config") or {}
        offload = bool(fsdp.get("fsdp_offload_params", False))
        if str(fsdp.get("fsdp_sharding_strategy", "FULL_SHARD")).upper() in ("SHARD_GRAD_OP", "2") or \
                fsdp.get("fsdp_reshard_after_forward") is False:
            return Sharding("FSDP, gradients and optimizer sharded", False, True, True, offload, offload)
        return Sharding(SHARDINGS["fsdp"].name, True, True, True, offload, offload)
    if kind in ("NO", "MULTI_GPU"):
        return SHARDINGS["none"]
    raise MedixError(f"{source}: distributed_type {kind} is not planned (DEEPSPEED, FSDP, MULTI_GPU or NO)")


def _fields(name: str) -> tuple[bool, bool, bool]:
    s = SHARDINGS[name]
    return s.weights, s.grads, s.optimizer
