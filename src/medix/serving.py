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

from medix.config import ServeConfig
from medix.serve import ManagedServer, vllm_command

log = logging.getLogger(__name__)


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
