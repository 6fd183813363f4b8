"""Where a judge or a policy under evaluation runs: the one table of backends (`backend: local | openai`).

    from medix.backends import get_backend
    get_backend("openai").served         # True: OpenAI-compatible servers (base_urls, --serve starts vLLM)
    get_backend("local").judge_method    # 'logits': the verdict from next-token logits, in this process

Every place that acts on a backend reads its traits here (the judge identity, the judge and generation
implementations, the train / eval config checks, `--plan`), so adding a backend is one `register` call plus
its implementation modules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from medix.errors import MedixError


@dataclass(frozen=True)
class Backend:
    name: str
    served: bool  # OpenAI-compatible servers: base_urls, keys, sampling and endpoints matter; its judge has probe()
    judge_method: str  # how a judge on this backend reads a verdict: "chat" (text) or "logits" (next token)
    judge_class: str  # "module:Class" implementing medix.judge.types.JudgeBackend (imported on first use)
    description: str
    # The model runs in this process (torch): `judge.dtype` applies and its runtime dtype enters the judge
    # identity, and a zoo judge's shipped threshold (calibrated on in-process P(YES)) applies.
    in_process: bool = False

    def judge_backend(self, config):
        """The judge backend for `config` (a JudgeConfig); its module is imported only now."""
        module, _, cls = self.judge_class.partition(":")
        return getattr(importlib.import_module(module), cls)(config)


BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    BACKENDS[backend.name] = backend
    return backend


def get_backend(name: str) -> Backend:
    found = BACKENDS.get(name)
    if found is None:
        raise MedixError(f"backend {name!r} is not known; use one of: {', '.join(BACKENDS)}")
    return found


def check_backend(name: str) -> str:
    """Pydantic field validator body: the name, if registered (else a ValueError naming the choices)."""
    try:
        return get_backend(name).name
    except MedixError as err:
        raise ValueError(str(err)) from None


register(Backend("local", served=False, judge_method="logits", judge_class="medix.judge.local_backend:LocalBackend",
                 description="in-process transformers model; a judge reads YES/NO from next-token logits",
                 in_process=True))
register(Backend("openai", served=True, judge_method="chat", judge_class="medix.judge.openai_backend:OpenAIBackend",
                 description="any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, OpenRouter)"))
