"""The one set of serve flags: `--serve-*` for the policy's server and `--judge-serve-*` for the judge's, each
a `ServeConfig` field, declared here once and added to a command by `with_serve_flags`.

    @app.command("run")
    @with_serve_flags(("serve_", "policy"), ("judge_serve_", "judge"))
    def eval_run(ctx: typer.Context, ..., **serve_flags): ...

    serve_section({"serve_gpus": "0,1", "serve_tensor_parallel": 2}, "serve_")
    # {'gpus': [0, 1], 'tensor_parallel_size': 2}: a partial ServeConfig for the config's policy_server

A new server flag is a row of `SERVE_FLAGS` (with the vLLM argument it becomes, if any) and, if it is a new
setting, its `ServeConfig` field: the CLI options, the config mapping and the vLLM command line follow.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional

from medix.errors import MedixError
from medix.registry import Registry


@dataclass(frozen=True)
class ServeFlag:
    field: str  # the ServeConfig field it sets
    type: Any  # the option's Python type (typer reads it)
    help: str  # "{who}" is the server's role: policy or judge
    vllm: str | None = None  # the vLLM server argument it becomes (serving.engines.vllm_layout_args), if any


SERVE_FLAGS: Registry[ServeFlag] = Registry("serve flag", add="a row of SERVE_FLAGS in serving/flags.py", entries=[
    ("gpus", ServeFlag("gpus", Optional[str], "--serve: {who} GPUs, e.g. 0,1,2,3.")),
    ("tensor_parallel", ServeFlag("tensor_parallel_size", Optional[int], "--serve: GPUs per {who} replica (vLLM "
                                  "--tensor-parallel-size).", "--tensor-parallel-size")),
    ("data_parallel", ServeFlag("data_parallel_size", Optional[int], "--serve: {who} replicas in the one server "
                                "(vLLM --data-parallel-size).", "--data-parallel-size")),
    ("api_servers", ServeFlag("api_server_count", Optional[int], "--serve: the {who}'s vLLM --api-server-count "
                              "(image preprocessing).", "--api-server-count")),
    ("gpu_memory", ServeFlag("gpu_memory_utilization", Optional[float], "--serve: the {who}'s vLLM "
                             "--gpu-memory-utilization (0-1].", "--gpu-memory-utilization")),
    ("max_model_len", ServeFlag("max_model_len", Optional[int], "--serve: the {who}'s vLLM --max-model-len.",
                                  "--max-model-len")),
    ("arg", ServeFlag("extra_args", Optional[list[str]], "--serve: one more vLLM argument for the {who} (repeat; "
                      "use --{prefix}arg=--flag for a value starting with '-').")),
])


def flag_names(prefix: str) -> list[str]:
    """The parameter names of one server's flags, e.g. serve_gpus ... serve_arg."""
    return [prefix + suffix for suffix in SERVE_FLAGS]


def with_serve_flags(*servers: tuple[str, str]) -> Callable:
    """Add every `SERVE_FLAGS` row as a typer option for each (parameter prefix, role) to a command whose
    signature ends in `**serve_flags`; the command receives them as keyword arguments."""
    import typer

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command)
        params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        for prefix, who in servers:
            for suffix, flag in SERVE_FLAGS.items():
                option = typer.Option(None, help=flag.help.format(who=who, prefix=prefix.replace("_", "-")))
                params.append(inspect.Parameter(prefix + suffix, inspect.Parameter.KEYWORD_ONLY, default=option,
                                                annotation=flag.type))
        command.__signature__ = signature.replace(parameters=params)
        return command
    return decorate


def serve_section(flags: dict[str, Any], prefix: str) -> dict:
    """The ServeConfig fields of the `--{prefix}*` flags given; `--*-gpus 0,1` becomes [0, 1]."""
    chosen = {flag.field: flags[prefix + suffix] for suffix, flag in SERVE_FLAGS.items()
              if flags.get(prefix + suffix) not in (None, [], ())}
    if "gpus" in chosen:
        chosen["gpus"] = gpu_ids(chosen["gpus"], f"--{prefix.replace('_', '-')}gpus")
    return chosen


def gpu_ids(text: str, flag: str) -> list[int]:
    """`0,1,2,3` → [0, 1, 2, 3]; anything else is an error naming the flag."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MedixError(f"{flag} {text!r}: give GPU ids separated by commas, e.g. 0,1,2,3") from None
