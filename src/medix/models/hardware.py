"""The one dtype rule, decided from the hardware at run time.

On CUDA a model runs in its checkpoint's dtype. On CPU, "auto" means bfloat16 where the CPU has native bf16
matmuls (AVX-512 BF16 or AMX) and float32 elsewhere: emulated bf16 is several times slower than float32
(docs/cpu_judge.md). The processor model of a machine is not fixed, so this is asked of torch each run.
A policy being trained is the one exception (`training_dtype`): float32 on CPU, bfloat16 on CUDA.
"""

from __future__ import annotations

from medix.errors import MedixError

DTYPES = ("auto", "float32", "bfloat16")


def cpu_native_bf16() -> bool:
    """The CPU runs bfloat16 matmuls natively (AVX-512 BF16 or AMX tiles), by torch's own capability query."""
    import torch

    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check() for check in checks if check is not None)


def pick_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def training_dtype(dtype: str = "auto") -> str:
    """The dtype policy weights are loaded in to be trained: as asked; "auto" → bfloat16 on CUDA (the paper's
    bf16 runs), float32 on CPU. Not `runtime_dtype`'s rule: on a CPU the optimizer updates the weights in their
    own dtype (no fp32 master copy without mixed precision), so bfloat16 there would lose small updates."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if pick_device(None).startswith("cuda") else "float32"


def runtime_dtype(device: str | None, dtype: str = "float32") -> str:
    """The dtype a model runs in: "float32" / "bfloat16" as asked; "auto" → the checkpoint's on CUDA
    ("auto"), bfloat16 on a CPU with native bf16, float32 on other CPUs."""
    if dtype not in DTYPES:
        raise MedixError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    if pick_device(device).startswith("cuda"):
        return "auto"
    return "bfloat16" if cpu_native_bf16() else "float32"


