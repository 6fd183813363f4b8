"""A judge's identity: everything that can change a verdict (backend, model and its revision, template hash,
protocol, sampling, servers, dtype, threshold ...). Stored in every record and judgment folder name
(`identity_key`) and in the verdict cache key, so verdicts of two different judges never mix.
"""

from __future__ import annotations

import hashlib
import json

from medix.backends import get_backend
from medix.judge.config import JudgeConfig
from medix.judge.prompts import ONE_TURN, TEMPLATE_VERSIONS, Prompts
from medix.judge.types import IDENTITY_NOTES
from medix.safe_text import display_url


def judge_identity(config: JudgeConfig, method: str, template_sha256: str, protocol: str,
                   rounds: int | None = None) -> dict:
    """Everything that can change a verdict; stored in every record and in the cache / resume key. A served
    judge's identity names its servers (without credentials): verdicts of two servers never mix."""
    backend = get_backend(config.backend)
    served = backend.served  # sampling settings and servers matter only to a served judge
    identity = {
        "backend": config.backend, "model": config.model, "method": method,
        "template_sha256": template_sha256, "protocol": protocol,
        "temperature": config.temperature if served else None,
        "max_tokens": config.max_tokens if served else None,
    }
    if served:  # where it runs: one model name on two servers may be two judges
        identity["endpoints"] = sorted(display_url(u).rstrip("/") for u in config.base_urls)
    if rounds is not None:
        identity["rounds"] = rounds
    if backend.in_process:  # float32 (absent, as in older runs) and bfloat16 verdicts never mix
        from medix.models import runtime_dtype

        dtype = runtime_dtype(config.device, config.dtype)
        if dtype != "float32":
            identity["dtype"] = dtype
        from medix.models import model_revision

        revision = model_revision(config.model, "judge model")
        if revision:  # a hub id: the commit its weights were read from
            identity["model_revision"] = revision
    # Absent when left at their defaults, so identities (and judgment folders) of older runs still match.
    for name, default in (("thinking", "auto"), ("threshold", 0.5), ("soft", False)):
        if getattr(config, name) != default:
            identity[name] = getattr(config, name)
    return identity


def identity_key(identity: dict) -> str:
    """Short hash of an identity: names judgment folders, so a new judge never reuses old verdicts."""
    settings = {k: v for k, v in identity.items() if k not in IDENTITY_NOTES}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def backend_method(config: JudgeConfig) -> str:
    """How the backend reads a verdict: "chat" (parsed from generated text) or "logits" (next-token logits)."""
    return get_backend(config.backend).judge_method


def one_turn_identity(config: JudgeConfig) -> dict:
    """The identity of the one-turn judge `config` describes, without building it (no model is loaded)."""
    return judge_identity(config, backend_method(config), Prompts(ONE_TURN, config.template).sha256,
                          TEMPLATE_VERSIONS["one-turn"])
