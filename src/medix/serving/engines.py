"""The command line that starts a serving engine on 127.0.0.1: vLLM's OpenAI server or llama.cpp's.

    medix judge serve --model Qwen/Qwen3-4B-Instruct-2507 --engine vllm        # GPU machine
    medix judge serve --model smollm2-135m --engine llamacpp                   # CPU, GGUF
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Callable

from medix.errors import MedixError
from medix.registry import Registry
from medix.models import SMOLLM2, canonical, resolve, served_name, smollm2_gguf
from medix.serving.config import ServeConfig
from medix.serving.flags import SERVE_FLAGS



def require_vllm(what: str = "--serve starts vLLM") -> None:
    """One clear line when vLLM is not installed here."""
    if importlib.util.find_spec("vllm") is None:
        raise MedixError(f"{what}, which is not installed here: pip install 'medix[vllm]' on a GPU machine, or "
                         "start the servers yourself and pass --base-url / --judge-url (docs/eval.md)")


def server_command(model: str, engine: str, port: int, extra: list[str] | tuple = ()) -> list[str]:
    """The argv that starts an OpenAI-compatible server for `model` on 127.0.0.1:port."""
    return ENGINES[engine](model, port, list(extra))


def _vllm(model: str, port: int, extra: list[str]) -> list[str]:
    require_vllm("the vllm engine needs vLLM")
    return vllm_command(model, port, extra)


def _llamacpp(model: str, port: int, extra: list[str]) -> list[str]:
    if importlib.util.find_spec("llama_cpp") is None:
        raise MedixError("the llamacpp engine needs llama-cpp-python: pip install 'medix[llamacpp]' "
                         "(compiles ~8 min)")
    path = model
    if canonical(model) == SMOLLM2:
        path = str(smollm2_gguf())  # the packaged GGUF, checked to be there
    if not path.endswith(".gguf") or not Path(path).is_file():
        raise MedixError(f"--engine llamacpp needs a local .gguf file or '{SMOLLM2}', got {model!r}")
    return [sys.executable, "-m", "llama_cpp.server", "--model", path, "--model_alias", model,
            "--host", "127.0.0.1", "--port", str(port), *extra]


# Each serving engine: (model, port, extra args) → the argv of its OpenAI-compatible server.
ENGINES: Registry[Callable[[str, int, list[str]], list[str]]] = Registry(
    "serving engine", add="a command function registered in serving/engines.py (and the ServeConfig.engine choice)",
    entries=[("vllm", _vllm), ("llamacpp", _llamacpp)])


def vllm_layout_args(spec: ServeConfig, max_model_len: int | None = None) -> list[str]:
    """vLLM's layout flags from `spec`, one per `SERVE_FLAGS` row that names a vLLM argument (a None leaves that
    setting at vLLM's default; a parallel size of 1 is vLLM's default too); `max_model_len`, when given, stands
    in for an unset spec.max_model_len."""
    args = []
    for flag in SERVE_FLAGS.values():
        value = getattr(spec, flag.field)
        if flag.field == "max_model_len":
            value = value or max_model_len
        if flag.vllm is None or value is None or (flag.vllm.endswith("parallel-size") and value == 1):
            continue
        args += [flag.vllm, str(value)]
    return args


def vllm_command(model: str, port: int, args: list[str] | tuple = ()) -> list[str]:
    """The vLLM OpenAI-server argv for `model` (any zoo name, hub id or folder), served under its hub id and
    under the name given, so a request may use either. `org/name@revision` loads that revision (vLLM's
    `--revision`, for the weights and the tokenizer)."""
    from medix.hub import split_revision

    hub = served_name(model)
    names = [hub] + ([model] if model != hub else [])
    repo, revision = split_revision(resolve(hub))
    pinned = ["--revision", revision, "--tokenizer-revision", revision] if revision else []
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", repo, *pinned,
            "--served-model-name", *names, "--host", "127.0.0.1", "--port", str(port), *args]
