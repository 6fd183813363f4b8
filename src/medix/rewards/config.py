"""The reward's configuration (`RewardConfig`): the component weights, presets (the ablation's arms), the
embedding threshold, the judge-failure policy, and the judge and embedder behind the accuracy components;
`load_reward_config` merges a profile, a YAML file and overrides.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field, create_model, field_validator, model_validator

from medix.config import ConfigModel, build, deep_merge, read_yaml
from medix.errors import MedixError
from medix.judge.config import JudgeConfig
from medix.models import MINILM, PAPER_MODELS
from medix.registry import Registry
from medix.rewards.table import COMPONENTS, Component


class EmbedderConfig(ConfigModel):
    model: str = Field(MINILM, description="Sentence-embedding model: embedded name, hub id or local folder.")
    batch_size: int = Field(128, ge=1, description="Texts per encode forward pass.")
    device: str | None = Field(None, description="torch device; None picks CUDA when present, else CPU.")


def weights_model(rows: Iterable[Component], base: type[ConfigModel] = ConfigModel,
                  name: str = "RewardWeights") -> type[ConfigModel]:
    """A weights config with one field per table row (`Component.weight`, its default and description): every
    weight >= 0, the outside-bracket ones at most 1 in sum, and at least one inside-bracket weight > 0."""
    rows = list(rows)
    inside = [c.weight for c in rows if c.in_bracket]
    outside = [c.weight for c in rows if not c.in_bracket]

    def checks(self):
        if inside and sum(getattr(self, w) for w in inside) <= 0:
            raise ValueError(f"{' + '.join(inside)} weights must be > 0 (set at least one)")
        if sum(getattr(self, w) for w in outside) > 1:
            raise ValueError(f"{' + '.join(outside)} weights must be at most 1 together (they sit outside the bracket)")
        return self

    fields: dict[str, Any] = {c.weight: (float, Field(c.default, ge=0, le=None if c.in_bracket else 1,
                                                      description=c.description)) for c in rows}
    model = create_model(name, __base__=base, __module__=__name__,
                         __validators__={f"_{name}_checks": model_validator(mode="after")(checks)}, **fields)
    return model


# One field per row of the component table (`rewards/table.py`), in the table's order:
# overall = (1 − format)·(judge·accuracy_llm + embed·accuracy_embed + modality·modality) + format·format.
RewardWeights = weights_model(COMPONENTS.values())
RewardWeights.__doc__ = ("The weight of each reward component (one field per row of rewards/table.py): "
                         "overall = (1 − format)·(judge·accuracy_llm + embed·accuracy_embed + modality·modality) "
                         "+ format·format.")


# `reward.preset`: the arms of the paper's reward ablation as named weight sets (docs/reward.md "Presets"). The
# single-signal arms train on that signal alone, format and modality off, as the project page describes them
# ("LLM-only or embedding-only"); llm+embed keeps the paper's 0.575 : 0.375 ratio. A weight left out is 0.
REWARD_PRESETS: Registry[dict[str, float]] = Registry("reward preset", add="an entry of REWARD_PRESETS in "
                                                      "rewards/config.py", entries=[
    ("composite", RewardWeights().model_dump()),
    ("llm", {"judge": 1.0}),
    ("embed", {"embed": 1.0}),
    ("llm+embed", {"judge": 0.575 / 0.95, "embed": 0.375 / 0.95}),
])


def preset_weights(name: str) -> dict[str, float]:
    """Every weight field of `RewardWeights` under preset `name` (0 where the preset leaves it out)."""
    preset = REWARD_PRESETS[REWARD_PRESETS.check(name)]  # a ValueError: inside a validator, it names the field
    return {field: preset.get(field, 0.0) for field in RewardWeights.model_fields}


class RewardConfig(ConfigModel):
    preset: str | None = Field(None, description="A named weight set (composite | llm | embed | llm+embed, "
                               "REWARD_PRESETS); weights given under `weights` win over the preset's, field by field.")
    weights: RewardWeights = Field(default_factory=RewardWeights, description="Component weights (paper defaults).")
    embed_threshold: float = Field(0.8, ge=-1, le=1, description="accuracy_embed = 1 iff cosine >= this.")
    embed_continuous: bool = Field(False, description="Use max(0, cosine) instead of the 0/1 threshold.")
    max_answer_chars: int = Field(4000, ge=2, description="Answers longer than this earn 0 accuracy (length hacking).")
    text_only_modality: bool = Field(False, description="Score the modality tag on samples without an image. False "
                                     "switches it off there and renormalises judge and embed weights.")
    think_tags: tuple[str, ...] = Field(("think", "thinking"), min_length=1,
                                        description="Reasoning tag names accepted by the parser and format reward.")
    on_judge_error: Literal["renormalize", "zero", "skip_group"] = Field(
        "renormalize", description="When the judge fails (after its retries): 'renormalize' drops the judge term and "
        "scales the other content weights up; 'zero' counts a 0 verdict (the official scripts); 'skip_group' leaves "
        "overall empty and training leaves the sample's prompt group out of the update. Counted as judge_error "
        "whatever the policy.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="The LLM judge behind accuracy_llm.")
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig, description="The model behind accuracy_embed.")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        given = data.get("weights")
        given = given.model_dump(exclude_unset=True) if isinstance(given, RewardWeights) else (given or {})
        if not isinstance(given, dict):
            return data  # the weights field reports its own type error
        return {**data, "weights": {**preset_weights(str(data["preset"])), **given}}

    @field_validator("on_judge_error", mode="before")
    @classmethod
    def _renamed_null(cls, value):
        if value == "null" or value is None:
            raise ValueError("'null' was replaced: use 'skip_group' (overall left empty; training skips the prompt "
                             "group), 'renormalize' (default) or 'zero' (a failed verdict counts 0)")
        return value

    @model_validator(mode="after")
    def _known_think_tags(self) -> "RewardConfig":
        bad = [t for t in self.think_tags if t not in ("think", "thinking")]
        if bad:
            raise ValueError(f"think_tags may contain 'think' and 'thinking', got {bad}")
        return self


# The reward's models: offline default (embedded models from PyPI packages) or the paper's (need the hub and a GPU).
PROFILES: dict[str, dict[str, Any]] = {
    "local": {},
    "paper": {"judge": {"backend": "openai", "model": PAPER_MODELS["judge"]},
              "embedder": {"model": PAPER_MODELS["embedder"]}},
}



def load_reward_config(path: str | Path | None = None, profile: str = "local",
                       overrides: dict | None = None) -> RewardConfig:
    """Profile defaults, then the YAML file (either the RewardConfig itself or under a `reward:` key), then
    `overrides` (a partial RewardConfig, e.g. `{"judge": {"model": "qwen2.5-coder-1.5b"}}` from a flag).

        >>> load_reward_config(None, "paper", {"judge": {"model": "m"}}).judge.backend
        'openai'
    """
    if profile not in PROFILES:
        raise MedixError(f"unknown profile '{profile}' (choose one of: {', '.join(PROFILES)})")
    data = PROFILES[profile]
    if path is not None:
        file_data = read_yaml(path)
        data = deep_merge(data, file_data.get("reward", file_data))
    return build(RewardConfig, deep_merge(data, overrides or {}), str(path or f"profile '{profile}'"))
