"""Where a judge or a policy under evaluation runs: the one table of backends (`backend: local | openai`).

    from medix.backends import get_backend
    get_backend("openai").served         # True: OpenAI-compatible servers (base_urls, --serve starts vLLM)
    get_backend("local").judge_method    # 'logits': the verdict from next-token logits, in this process

Every place that acts on a backend reads its traits here (the judge identity, the judge and generation
implementations, the train / eval config checks, `--plan`), so adding a backend is one `BACKENDS.register`
call here plus its implementation module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from medix.registry import Registry


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


BACKENDS: Registry[Backend] = Registry("judge backend", add="a BACKENDS.register call in medix/backends.py")


def register(backend: Backend) -> Backend:
    return BACKENDS.register(backend.name, backend)


def get_backend(name: str) -> Backend:
    """The backend called `name`; an unknown name raises a MedixError with the close matches."""
    return BACKENDS[name]


def check_backend(name: str) -> str:
    """Pydantic field validator body: the name, if registered (else a ValueError naming the choices)."""
    return BACKENDS.check(name)


register(Backend("local", served=False, judge_method="logits", judge_class="medix.judge.local_backend:LocalBackend",
                 description="in-process transformers model; a judge reads YES/NO from next-token logits",
                 in_process=True))
register(Backend("openai", served=True, judge_method="chat", judge_class="medix.judge.openai_backend:OpenAIBackend",
                 description="any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, OpenRouter)"))
