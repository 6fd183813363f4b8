"""TRL's own names in a medix training config: the installed `GRPOConfig`'s fields, the ones medix owns, and the
`report_to` integrations transformers knows. Used by `medix.train.config` while a config is read, so it imports
nothing of medix's training code; building the GRPOConfig is `medix.train.trl_args`.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from typing import Any

# GRPOConfig fields medix derives from its own sections; setting them directly would break a run.
MANAGED = {
    "reward_weights": "reward.weights (TRL gets one `overall` reward function, weight 1; the component weights are "
                      "inside it)",
    "remove_unused_columns": "medix (the reward functions read the dataset's solution / problem / images columns)",
    "log_completions": "trainer.log_completions (medix writes completions.jsonl itself)",
    # Passed through, these reached TRL and nothing else: gradient_checkpointing=false was overridden by the
    # newer activation_checkpointing medix sets, and a completion length given here missed vLLM's context
    # length, `--plan` and validation.
    "gradient_checkpointing": "model.gradient_checkpointing (medix sets TRL's activation_checkpointing from it)",
    "activation_checkpointing": "model.gradient_checkpointing (medix sets TRL's activation_checkpointing from it)",
    "max_completion_length": "rollout.max_completion_tokens (also read by vLLM's context length, --plan and "
                             "validation; rollout.max_completion_length is accepted too)",
    "use_vllm": "rollout.engine (vllm or transformers; also read by --plan)",
}
# report_to names that are not transformers integrations.
EXTRA_REPORTERS = ("json",)


@functools.cache
def _field_types() -> dict[str, Any]:
    import dataclasses
    import typing

    from trl import GRPOConfig

    try:
        hints = typing.get_type_hints(GRPOConfig)
    except Exception:  # noqa: BLE001 — a forward reference typing cannot resolve: the declared types
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(GRPOConfig) if f.init}


def coerce(section: str, key: str, value: Any) -> Any:
    """`value` as GRPOConfig's field `key` types it ("1e-8" from YAML 1.1 → 1e-08), or ValueError naming the
    field and its type. A type pydantic cannot check passes the value through."""
    from pydantic import TypeAdapter, ValidationError
    from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

    kind = _field_types().get(key)
    if kind is None or isinstance(kind, str):
        return value
    try:
        adapter = TypeAdapter(kind)
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError):
        return value
    try:
        typed = adapter.validate_python(value)
        if isinstance(typed, float) and not math.isfinite(typed):
            raise ValueError(f"{section}.{key}={value!r}: not a finite number")
        return typed
    except ValidationError:
        name = getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
        raise ValueError(f"{section}.{key}={value!r}: TRL's {key} takes {name}") from None


@functools.cache
def grpo_fields() -> frozenset[str]:
    """Names of the installed GRPOConfig's fields (TrainingArguments' included)."""
    import dataclasses

    from trl import GRPOConfig

    return frozenset(f.name for f in dataclasses.fields(GRPOConfig) if f.init)


# Keys that hold a credential: TRL writes every GRPOConfig field into training_args.bin in each checkpoint and in
# final/, so a token given in a config would be stored there in clear.
_CREDENTIAL = re.compile(r"(?i)(^|_)(token|key|apikey|password|secret)$")


def _credentials(value: Any, path: str) -> list[str]:
    """The dotted paths under `path` whose key names a credential and whose value is set."""
    if not isinstance(value, dict):
        return []
    found = []
    for key, inner in value.items():
        here = f"{path}.{key}"
        if _CREDENTIAL.search(str(key)) and inner not in (None, "", False):
            found.append(here)
        found += _credentials(inner, here)
    return found


def check_passthrough(section: str, extras: dict[str, Any], own: list[str]) -> None:
    """ValueError naming the first key of `extras` that is neither a GRPOConfig field nor allowed here, or that
    holds a credential (at any depth: `model_init_kwargs.token`)."""
    fields = grpo_fields()
    secrets = _credentials(extras, section)
    if secrets:
        raise ValueError(f"{secrets[0]}: a credential in a config would be stored in clear in every checkpoint's "
                         "training_args.bin; log in with `hf auth login` or set HF_TOKEN in the environment "
                         "instead, and remove it here")
    for key in extras:
        if key in MANAGED:
            raise ValueError(f"{section}.{key} is set by {MANAGED[key]}; remove it")
        if key not in fields:
            near = list(dict.fromkeys(difflib.get_close_matches(key, [*own, *fields], n=3, cutoff=0.6)))
            hint = f"did you mean {' or '.join(near)}?" if near else f"medix fields here: {', '.join(own)}"
            raise ValueError(f"{section}.{key}: unknown key, neither a medix field nor a TRL GRPOConfig field; "
                             f"{hint} (TRL's fields: https://huggingface.co/docs/trl/grpo_trainer)")


@functools.cache
def known_reporters() -> frozenset[str]:
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    return frozenset([*INTEGRATION_TO_CALLBACK, *EXTRA_REPORTERS, "all", "none"])


def check_report_to(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in known_reporters()]
    if unknown:
        raise ValueError(f"unknown logger(s) {unknown}; choose from {sorted(known_reporters())}")
    return names
