#!/usr/bin/env python
"""The CPU facts a judge benchmark's figures depend on, and the dtype the local judge picks from them.

    python bench/hardware.py              # the table (also printed at the top of cpu_judge.py / judge_prefix.py)
    python bench/hardware.py --markdown   # as markdown, for docs/
    python bench/hardware.py --smoke      # the same (it takes no time; tests/test_bench.py runs it)

bfloat16 matmuls are fast only where the CPU has them natively (AVX-512 BF16 or AMX tiles); elsewhere torch
emulates them, several times slower than float32 — so every published judge figure names these flags.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

TORCH_DTYPES = ("float32", "bfloat16")  # what a judge bench compares; float32 is the reference
# /proc/cpuinfo flags behind torch's bf16 kernels: AVX-512 BF16 (vdpbf16ps) and the AMX tile unit.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def cpuinfo() -> tuple[str, set[str]]:
    """(model name with its family and model numbers, flags) of the first processor in /proc/cpuinfo;
    (platform.processor(), {}) where there is none. The numbers tell apart CPU generations that a masked
    model name ("AMD EPYC") does not."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return platform.processor() or "unknown", set()
    fields: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition(":")
        if not key.strip():
            break  # the first processor only
        fields.setdefault(key.strip(), value.strip())
    numbers = ", ".join(f"{k} {fields[k]}" for k in ("cpu family", "model") if k in fields)
    name = fields.get("model name", "unknown") + (f" ({numbers})" if numbers else "")
    return name, set(fields.get("flags", "").split())


def facts() -> list[tuple[str, str]]:
    """(what, value) rows: CPU model and flags, torch's capability and threads, the judge's runtime dtype."""
    import torch

    from medix.models import cpu_native_bf16, runtime_dtype

    name, flags = cpuinfo()
    return [
        ("CPU model", name),
        ("CPUs (os.cpu_count)", str(os.cpu_count())),
        ("torch", torch.__version__),
        ("torch threads", str(torch.get_num_threads())),
        ("torch CPU capability", torch.backends.cpu.get_cpu_capability()),
        *[(f"/proc/cpuinfo {flag}", "yes" if flag in flags else "no") for flag in BF16_FLAGS],
        ("native bf16 (cpu_native_bf16)", "yes" if cpu_native_bf16() else "no"),
        ("judge dtype 'auto' on CPU", runtime_dtype("cpu", "auto")),
    ]


def plan_dtypes(forced: str | None) -> tuple[list[str], str | None]:
    """The dtypes a judge bench runs, float32 (the reference) first: the `--dtypes` it was given, else float32
    and the runtime choice; with a note when that leaves float32 alone (a CPU without native bf16)."""
    from medix.errors import MedixError
    from medix.models import runtime_dtype

    if forced:
        asked = [d.strip() for d in forced.split(",") if d.strip()]
        bad = [d for d in asked if d not in TORCH_DTYPES]
        if bad or "float32" not in asked:
            raise MedixError(f"--dtypes {forced!r}: give float32 (the reference) and optionally bfloat16, "
                             f"comma-separated{'; not a dtype: ' + ', '.join(bad) if bad else ''}")
        return sorted(set(asked), key=TORCH_DTYPES.index), None
    runtime = runtime_dtype("cpu", "auto")
    if runtime == "float32":
        import torch

        return ["float32"], (f"the runtime choice on this CPU is float32 (no native bf16; torch capability "
                             f"{torch.backends.cpu.get_cpu_capability()}): one row per judge and workload; "
                             "--dtypes float32,bfloat16 adds emulated bfloat16 (slower)")
    return ["float32", runtime], None


def dtype_label(dtype: str) -> str:
    """How a row names its dtype: "(runtime)" for the judge's own choice here, "(emulated)" for bf16 without
    native support."""
    from medix.models import cpu_native_bf16, runtime_dtype

    if dtype == "bfloat16" and not cpu_native_bf16():
        return "bfloat16 (emulated)"
    return f"{dtype} (runtime)" if dtype == runtime_dtype("cpu", "auto") else dtype


def show(markdown: bool) -> None:
    """The facts as a two-column table (aligned columns, or markdown)."""
    rows = facts()
    if markdown:
        print("| what | value |\n|---|---|")
        for what, value in rows:
            print(f"| {what} | {value} |")
    else:
        width = max(len(what) for what, _ in rows)
        for what, value in [("what", "value"), *rows]:
            print(f"{what.ljust(width)}  {value}")
    print()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="the same table (nothing to shrink; for tests/test_bench.py)")
    show(ap.parse_args(argv).markdown)


if __name__ == "__main__":
    main()
