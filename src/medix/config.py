"""Configs: one pydantic model per concern; every field documented; checks run once at construction.

YAML files map onto these models (`load_reward_config("reward.yaml")`, `build(RewardConfig, read_yaml(path),
path)`); an unknown key or a bad value is reported with the file and the dotted field path. Where a command's
flags and a YAML file both set a value, the merge is a function here (`load_reward_config`, `JudgeConfig.from_sources`,
`EvalConfig.from_sources`), so it is tested without the CLI.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator,
                      model_validator)

from medix.backends import check_backend, get_backend
from medix.errors import MedixError
from medix.files import check_url, display_url, read_text, without_credentials
from medix.models import MINILM, PAPER_MODELS, default_judge, known


# Every URL field: http(s) with a host, refused otherwise (`medix.files.check_url`).
ServerURL = Annotated[str, AfterValidator(check_url)]

class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)  # nan / inf refused


class EmbedderConfig(_Config):
    model: str = Field(MINILM, description="Sentence-embedding model: embedded name, hub id or local folder.")
    batch_size: int = Field(128, ge=1, description="Texts per encode forward pass.")
    device: str | None = Field(None, description="torch device; None picks CUDA when present, else CPU.")


class JudgeConfig(_Config):
    @field_serializer("base_urls")
    def _public_urls(self, urls: list[str]) -> list[str]:
        """Dumped (config.json, summaries, calibrated YAML) without the credentials inside the URLs."""
        return [display_url(u) for u in urls]

    backend: str = Field(
        "local", description="A backend of medix.backends: 'local': in-process transformers model, YES/NO read "
        "from next-token logits. 'openai': any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, OpenRouter).")
    _known_backend = field_validator("backend")(check_backend)
    model: str = Field(default_factory=default_judge, description="Judge model: embedded name, hub id or local "
                       "folder ('local'), or the model name the server expects ('openai'). Default: the CPU judge "
                       "qwen2.5-coder-1.5b where its parts are installed (pip install -e \".[cpu-judge]\"), else "
                       "smollm2-135m; $MEDIX_DEFAULT_JUDGE overrides that choice.")
    base_urls: list[ServerURL] = Field(["http://127.0.0.1:8000/v1"], min_length=1,
                                 description="OpenAI-compatible endpoints; requests are spread over all of them. "
                                 "user:password@ in a URL is sent as basic auth and never written anywhere.")
    api_key_env: str = Field("MEDIX_JUDGE_API_KEY", description="Name of the environment variable holding the API key "
                             "(e.g. OPENROUTER_API_KEY). Unset → 'EMPTY', which local vLLM servers accept.")
    template: str | None = Field(None, description="Path to a Jinja binary judge template (variables question, "
                                 "reference, candidate; filter quote); None = the packaged one of the mode.")
    rubric_template: str | None = Field(None, description="Path to a Jinja 0-5 rubric template for report tasks "
                                        "(eval); None = the packaged one of the protocol.")
    max_concurrency: int = Field(64, ge=1, description="Judge requests in flight at once per server (openai "
                                 "backend); halved on timeouts, won back as replies arrive.")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(3, ge=0, description="Retries after a failed request (HTTP error, timeout, unparsable "
                             "verdict) before the sample is marked judge_error.")
    backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles each retry (with jitter).")
    max_backoff_s: float = Field(8.0, ge=0, description="Cap on one retry delay.")
    max_consecutive_failures: int = Field(8, ge=0, description="Tries in a row with no reply (timeouts, connection "
                                          "errors; across all requests, spanning at least timeout_s) after which "
                                          "every further request fails at once, naming the servers, instead of "
                                          "waiting timeout × retries each (circuit breaker); 0 = never.")
    temperature: float = Field(0.0, ge=0, description="Judge sampling temperature (openai backend).")
    max_tokens: int = Field(8, ge=1, description="Tokens the judge may write; a verdict is one word (the eval "
                            "judge gets 512, as the paper's, so a verbose or thinking judge is not cut off).")
    thinking: Literal["auto", "on", "off"] = Field(
        "auto", description="Thinking judges (Qwen3): 'off' sends chat_template_kwargs enable_thinking=false "
        "(vLLM / SGLang) and, for servers that ignore it, appends ' /no_think' to the first prompt; 'on' asks "
        "for thinking; 'auto' sends nothing. A reply's think block is always removed before parsing.")
    threshold: float = Field(0.5, ge=0, le=1, description="YES iff P(YES) > threshold, where the backend gives a "
                             "probability (local logits; server logprobs). Fit it with `medix judge audit --calibrate`. "
                             "Unset, a local embedded judge with the packaged template uses its shipped calibrated "
                             "threshold (docs/judge.md), any other judge 0.5.")
    soft: bool = Field(False, description="accuracy_llm = P(YES) itself (a graded signal for GRPO) instead of the "
                       "thresholded 0/1, where a probability is available.")
    logprobs: bool = Field(True, description="openai backend, both modes: ask the server for the verdict token's "
                           "top logprobs (vLLM, SGLang, llama.cpp return them) to get P(YES); a server without them "
                           "is noted once (identity: p_yes: unavailable) and verdicts come from the text. Set false "
                           "for a provider that rejects the parameter (its HTTP 400 reason is in the error).")
    batch_size: int = Field(16, ge=1, description="Prompts per forward pass (local backend).")
    max_input_tokens: int | None = Field(None, ge=320, description="local backend: the judge's context in tokens; "
                                         "None = the model's own (max_position_embeddings). A prompt is never "
                                         "truncated: past this only its question is shortened, in the middle, marked.")
    shared_prefix: bool = Field(True, description="local backend: prompts starting with the same tokens (a GRPO "
                                "group: same question and reference) share one forward pass over that prefix; "
                                "only the differing suffixes are run, batched. Same verdicts (within 1e-4 in P(YES)).")
    min_shared_tokens: int = Field(32, ge=1, description="Prompts share a prefix pass when they have at least this "
                                   "many leading tokens in common (local backend, shared_prefix).")
    device: str | None = Field(None, description="torch device for the local backend; None = CUDA if present.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="local backend: weights' dtype. 'auto': the checkpoint's on CUDA; on CPU bfloat16 where "
        "the CPU has native bf16 (AVX-512 BF16 / AMX), float32 elsewhere. Part of the judge identity.")
    cache: bool = Field(True, description="Reuse verdicts keyed by (judge identity, template hash, inputs).")
    cache_path: str | None = Field(None, description="SQLite verdict cache; None = ~/.cache/medix/judge_cache.sqlite.")

    @model_validator(mode="after")
    def _shipped_threshold(self) -> "JudgeConfig":
        """A local embedded judge with the packaged binary template, threshold unset: its calibrated one."""
        entry = known(self.model)
        if ("threshold" not in self.model_fields_set and get_backend(self.backend).in_process and self.template is None
                and entry is not None and entry.judge_threshold is not None):
            object.__setattr__(self, "threshold", entry.judge_threshold)
        return self

    @classmethod
    def from_sources(cls, path: str | Path | None, overrides: dict[str, Any]) -> "JudgeConfig":
        """The judge of a YAML file — its `reward.judge:` or `judge:` section, else the whole file as a JudgeConfig —
        with the `overrides` that are not None on top (`medix judge audit --judge-model ...`).

            >>> JudgeConfig.from_sources(None, {"backend": "openai", "model": "served-judge"}).model
            'served-judge'
        """
        data = read_yaml(path) if path else {}
        outer = data["reward"] if isinstance(data.get("reward"), dict) else data
        section = outer.get("judge", data.get("judge", data))
        if not isinstance(section, dict):
            raise MedixError(f"{path}: the judge section must be a mapping of JudgeConfig fields, got {section!r:.80}")
        given = {key: value for key, value in overrides.items() if value is not None}
        return build(cls, {**section, **given}, str(path or "command-line flags"))


class RewardWeights(_Config):
    """overall = (1 − format)·(judge·accuracy_llm + embed·accuracy_embed + modality·modality) + format·format."""

    format: float = Field(0.1, ge=0, le=1, description="w_f: weight of the format reward (outside the bracket).")
    judge: float = Field(0.575, ge=0, description="w_j: LLM-judge accuracy.")
    embed: float = Field(0.375, ge=0, description="w_e: embedding-similarity accuracy.")
    modality: float = Field(0.05, ge=0, description="w_m: modality-tag match.")

    @model_validator(mode="after")
    def _some_content_weight(self) -> "RewardWeights":
        if self.judge + self.embed + self.modality <= 0:
            raise ValueError("judge + embed + modality weights must be > 0 (set at least one)")
        return self


# `reward.preset`: the arms of the paper's reward ablation as named weight sets (docs/reward.md "Presets"). The
# single-signal arms train on that signal alone, format and modality off, as the project page describes them
# ("LLM-only or embedding-only"); llm+embed keeps the paper's 0.575 : 0.375 ratio. A weight left out is 0.
REWARD_PRESETS: dict[str, dict[str, float]] = {
    "composite": RewardWeights().model_dump(),
    "llm": {"judge": 1.0},
    "embed": {"embed": 1.0},
    "llm+embed": {"judge": 0.575 / 0.95, "embed": 0.375 / 0.95},
}


def preset_weights(name: str) -> dict[str, float]:
    """Every weight field of `RewardWeights` under preset `name` (0 where the preset leaves it out)."""
    if name not in REWARD_PRESETS:
        close = difflib.get_close_matches(name, REWARD_PRESETS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown reward preset {name!r}: {hint}known: {', '.join(REWARD_PRESETS)}")
    return {field: REWARD_PRESETS[name].get(field, 0.0) for field in RewardWeights.model_fields}


class RewardConfig(_Config):
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
    "paper": {"judge": {"backend": "openai", "model": PAPER_MODELS["judge"]}, "embedder": {"model": PAPER_MODELS["embedder"]}},
}

T = TypeVar("T", bound=BaseModel)


def _valid_keys(cls: type[BaseModel] | None, loc: tuple) -> list[str]:
    """Field names of the config section that `loc` (minus its last part) points into."""
    for part in loc[:-1]:
        field = cls.model_fields.get(str(part)) if cls else None
        annotation = getattr(field, "annotation", None)
        cls = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return sorted(cls.model_fields) if cls else []


def validation_message(err: ValidationError, source: str, cls: type[BaseModel] | None = None) -> str:
    """Turn a pydantic error into lines naming the source and each dotted field."""
    lines = [f"invalid config in {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            valid = _valid_keys(cls, e["loc"])
            msg = "unknown key" + (f" (valid: {', '.join(valid)})" if valid else "")
        # A whole section as the input (a cross-field check) is noise: the message names the key.
        value = e.get("input")  # a URL's password stays out of the message
        shown = repr(without_credentials(value)) if isinstance(value, str) else without_credentials(repr(value))
        got = "" if e["type"] == "missing" or isinstance(value, dict) else f" (got {shown[:80]})"
        lines.append(f"  {loc}: {msg}{got}")
    return "\n".join(lines)


def build(cls: type[T], data: dict, source: str) -> T:
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise MedixError(validation_message(err, source, cls)) from None


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base loader says what is wrong with it
                break
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (lines {first} and {key_node.start_mark.line + 1}); "
                    "keep one", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from a file; a key given twice in one mapping is refused, naming both lines."""
    file = Path(path)
    if not file.is_file():
        raise MedixError(f"config file not found: {file}")
    try:
        data = yaml.load(read_text(file), Loader=_UniqueKeys) or {}
    except yaml.YAMLError as err:
        mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
        if mark is not None and problem:
            raise MedixError(f"{file}, line {mark.line + 1}: not valid YAML: {problem}") from None
        raise MedixError(f"{file}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise MedixError(f"{file}: expected a mapping at the top level")
    return data


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
