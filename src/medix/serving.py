"""`--serve` on a GPU node: vLLM servers for the policy and the judge, laid out over the node's GPUs.

    medix eval run --model MediX-R1-8B --backend openai --serve --judge-backend openai --judge-model Qwen/Qwen3-14B \
        --serve-gpus 0,1,2,3,4,5 --serve-data-parallel 6 --judge-serve-gpus 6,7 --judge-serve-tensor-parallel 2

Each model gets `data_parallel` servers (one process each, on ports port, port+1, ...), each server on
`tensor_parallel` of the listed GPUs (its CUDA_VISIBLE_DEVICES), so the client spreads the work over them
by load and a server that dies has its requests finished by the others. vLLM's own data parallelism (one
server, one port, `--data-parallel-size N`) is the alternative: pass it in `extra_args`.
Zoo names are served under their hub id (`MediX-R1-8B` → `MBZUAI/MediX-R1-8B`), and also under the name
given, so a request may use either. Every server writes its own log file; `ServerGroup` starts them all,
then waits for all, and stops every one of them on every way out (see `medix.serve.ManagedServer`).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, model_validator

from medix.config import _Config
from medix.serve import ManagedServer, served_name, vllm_command  # noqa: F401 (served_name: re-exported)

log = logging.getLogger(__name__)


class ServeConfig(_Config):
    """How one model is served on this node (vLLM; GPU machines)."""

    gpus: list[int] | None = Field(None, description="CUDA device ids for this model's servers; None = 0 .. "
                                   "tensor_parallel × data_parallel − 1.")
    tensor_parallel: int = Field(1, ge=1, description="GPUs per server (vLLM --tensor-parallel-size).")
    data_parallel: int = Field(1, ge=1, description="Servers (replicas), one process and port each; requests go "
                               "to the one with the fewest in flight.")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="Share of each GPU's memory vLLM "
                                                 "may take (--gpu-memory-utilization); None = vLLM's (0.9).")
    max_model_len: int | None = Field(None, ge=1, description="Context length (--max-model-len); None = the "
                                      "model's. Lower it when the KV cache does not fit.")
    extra_args: list[str] = Field(default_factory=list, description="Further vLLM arguments, passed as they are "
                                  "(e.g. --enable-prefix-caching, --data-parallel-size 2).")
    port: int = Field(8000, ge=1, le=65535, description="Port of the first server; replica k listens on port + k.")
    startup_timeout_s: float = Field(1800.0, gt=0, description="Seconds to wait for every server to answer.")

    @model_validator(mode="after")
    def _gpus_fit(self) -> "ServeConfig":
        wanted = self.tensor_parallel * self.data_parallel
        if self.gpus is not None and len(self.gpus) != wanted:
            raise ValueError(f"gpus lists {len(self.gpus)} device(s) {self.gpus}, but tensor_parallel "
                             f"{self.tensor_parallel} × data_parallel {self.data_parallel} = {wanted}; list "
                             f"{wanted} ids or change the parallel sizes")
        if self.gpus is not None and len(set(self.gpus)) != len(self.gpus):
            raise ValueError(f"gpus repeats a device: {self.gpus}")
        return self

    @property
    def devices(self) -> list[int]:
        return self.gpus if self.gpus is not None else list(range(self.tensor_parallel * self.data_parallel))


@dataclass(frozen=True)
class ServerLaunch:
    """One server to start: its command line, the environment it adds, its URL and log file."""

    name: str  # e.g. "policy-0"
    command: list[str]
    env: dict[str, str]
    url: str
    log_path: Path


def plan_servers(role: str, model: str, spec: ServeConfig, log_dir: Path) -> list[ServerLaunch]:
    """The `data_parallel` launches of one model: replica k on port + k and GPUs k·tp .. (k+1)·tp − 1 of the list."""
    devices, tp = spec.devices, spec.tensor_parallel
    launches = []
    for k in range(spec.data_parallel):
        port = spec.port + k
        group = devices[k * tp:(k + 1) * tp]
        command = vllm_command(model, port, spec.tensor_parallel, spec.gpu_memory_utilization, spec.max_model_len,
                               spec.extra_args)
        launches.append(ServerLaunch(f"{role}-{k}", command,
                                     {"CUDA_VISIBLE_DEVICES": ",".join(map(str, group))},
                                     f"http://127.0.0.1:{port}/v1", log_dir / f"{role}-{k}.log"))
    return launches


class ServerGroup(contextlib.AbstractContextManager):
    """Start several servers together (all launched, then all waited for) and stop every one on exit."""

    def __init__(self, launches: list[ServerLaunch], startup_timeout_s: float = 1800.0):
        self.servers = [ManagedServer(l.command, l.url, startup_timeout_s, env=l.env, log_path=l.log_path)
                        for l in launches]
        self.launches = launches

    @property
    def urls(self) -> list[str]:
        return [launch.url for launch in self.launches]

    def __enter__(self) -> "ServerGroup":
        try:
            for server in self.servers:
                server.refuse_busy_port()
            for server, launch in zip(self.servers, self.launches):
                log.warning("starting %s at %s (log: %s)", launch.name, launch.url, launch.log_path)
                server.launch()
            for server in self.servers:
                server.wait_for(server.process)
        except BaseException:  # a failed start, Ctrl-C or SIGTERM while waiting: stop them all
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in reversed(self.servers):  # reverse: each puts back the SIGTERM handler it found
            server.stop()

    def __exit__(self, *exc) -> None:
        self.stop()


def require_vllm() -> None:
    """`--serve` starts vLLM: a clear line when it is not installed (CPU machines)."""
    import importlib.util

    from medix.errors import MedixError

    if importlib.util.find_spec("vllm") is None:
        raise MedixError("--serve starts vLLM, which is not installed here: pip install 'medix[vllm]' on a GPU "
                         "machine, or start the servers yourself and pass --base-url / --judge-url (docs/eval.md)")
