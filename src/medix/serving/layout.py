"""`--serve` on a node: one vLLM server per model and phase, laid out by vLLM itself.

    medix eval run --model MediX-R1-8B --backend openai --serve --judge-backend openai --judge-model Qwen/Qwen3-14B \
        --serve-gpus 0,1,2,3,4,5 --serve-data-parallel 6 --judge-serve-gpus 6,7 --judge-serve-tensor-parallel 2

The policy's server gets CUDA_VISIBLE_DEVICES=0,...,5 and `--data-parallel-size 6`: six engine replicas behind
one endpoint, balanced by vLLM's own scheduler (`--api-server-count` adds front-end processes where image
preprocessing is the bottleneck). Zoo names are served under their hub id (`MediX-R1-8B` → `MBZUAI/MediX-R1-8B`)
and under the name given. Each server writes OUT/logs/<role>.log and is stopped when its phase ends, on every way
out (`medix.serving.process.ManagedServer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medix.serving.config import ServeConfig
from medix.serving.engines import vllm_command, vllm_layout_args
from medix.serving.fit import ContextFit


@dataclass(frozen=True)
class ServerLaunch:
    """One server to start: its command line, the environment it adds, its URL and log file."""

    name: str  # "policy" or "judge"
    command: list[str]
    env: dict[str, str]
    url: str
    log_path: Path


def plan_server(role: str, model: str, spec: ServeConfig, log_dir: Path,
                fit: ContextFit = ContextFit()) -> ServerLaunch:
    """The one vLLM launch of `model` for `role`: every listed GPU visible, vLLM's own tensor and data parallelism
    over them; `fit` (serving/fit.py) sizes the context and the images per prompt where the spec leaves them."""
    args = [*vllm_layout_args(spec, fit.max_model_len), *fit.media_args(spec.extra_args), *spec.extra_args]
    command = vllm_command(model, spec.port, args)
    return ServerLaunch(role, command, {"CUDA_VISIBLE_DEVICES": ",".join(map(str, spec.devices))},
                        f"http://127.0.0.1:{spec.port}/v1", log_dir / f"{role}.log")
