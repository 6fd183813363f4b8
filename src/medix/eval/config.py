"""`EvalConfig`: everything a `medix eval run` needs, every field documented (YAML or CLI flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BeforeValidator, Field, InstanceOf, PlainSerializer, ValidationInfo, field_serializer,
                      field_validator, model_validator)

from medix.backends import check_backend, get_backend
from medix.config import ConfigModel, ServerURL, build, deep_merge, read_yaml
from medix.judge.config import JudgeConfig
from medix.serving.config import ServeConfig
from medix.errors import MedixError
from medix.eval.flags import flag_overrides
from medix.eval.protocol import PAPER_PROTOCOL, Protocol, get_protocol
from medix.eval.records import sha256
from medix.models import zoo_entry
from medix.safe_text import display_url

PHASES = ("generate", "judge", "score")


def _protocol(value):
    """A protocol name from YAML or a flag → the Protocol object (medix.eval.protocol)."""
    try:
        return get_protocol(value)
    except MedixError as err:
        raise ValueError(str(err)) from None


# In YAML and in dumps a protocol is its name; in code it is the object.
ProtocolField = Annotated[InstanceOf[Protocol], BeforeValidator(_protocol), PlainSerializer(lambda p: p.name)]


def _eval_judge(data: dict) -> JudgeConfig:
    """The judge of a config without a `judge:` section: its protocol's judge defaults."""
    return JudgeConfig(**data.get("protocol", PAPER_PROTOCOL).judge_defaults)


class EvalConfig(ConfigModel):
    @field_serializer("base_urls")
    def _public_urls(self, urls: list[str]) -> list[str]:
        """Dumped without the credentials inside the URLs (`medix.safe_text.display_url`)."""
        return [display_url(u) for u in urls]

    protocol: ProtocolField = Field(
        PAPER_PROTOCOL, description="'paper': the published MediX-R1 evaluation item by item (questions, references, "
        "bare prompts, JSON-score judge, failures count as 0). 'medix': format prompt, answer-only judging, "
        "YES/NO judge, failures excluded. Runs of the two never mix (the protocol is in the run identity).")
    model: str = Field(..., description="Policy under test: zoo name (MediX-R1-8B, smollm2-135m), hub id or "
                       "folder; with backend 'openai', the model name the server expects.")
    backend: str = Field("local", description="A backend of medix.backends: 'local': transformers on this machine "
                         "(batched); 'openai': an OpenAI-compatible server.")
    _known_backend = field_validator("backend")(check_backend)
    base_urls: list[ServerURL] = Field(["http://127.0.0.1:8000/v1"], min_length=1, description="Policy servers for "
                                 "backend 'openai' (one per GPU or node): each request goes to the one with the "
                                 "fewest in flight; a server that stops answering has its items retried on the others.")
    serve: bool = Field(False, description="Start vLLM on this node (GPU machine): the policy servers of "
                        "`policy_server` for the generate phase, then, with `judge_server` set and judge backend "
                        "'openai', the judge servers for the judge phase; each is stopped when its phase ends.")
    policy_server: ServeConfig = Field(default_factory=ServeConfig, description="Layout of the policy servers "
                                       "`serve` starts (GPUs, tensor / data parallel, memory, context, extra args).")
    judge_server: ServeConfig | None = Field(None, description="Layout of the judge servers `serve` starts "
                                             "(None: the judge is not started; judge.base_urls is used).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable with the policy server's key.")
    tasks: list[str] = Field(["all"], description="Selectors: all, llm, vlm or task names.")
    data_dir: str | None = Field(None, description="Local mirrors DIR/<task>/test.jsonl; None = the hub.")
    official_tasks: str | None = Field(None, description="Your copy of the official eval/tasks.yaml (or its "
                                       "folder, with utils.py): the paper protocol's prompt fields are read "
                                       "from it, so the published prompts are reproduced word for word "
                                       "(medix.eval.official).")
    limit: int | None = Field(None, ge=1, description="First N items per task (smoke runs).")
    phases: list[Literal["generate", "judge", "score"]] = Field(list(PHASES), description="Phases to run, in order.")
    output_dir: str = Field("runs/eval", description="Where records, scores and the report go.")
    max_new_tokens: int | None = Field(None, ge=1, description="Generation budget per answer; None = the "
                                       "protocol's (paper 2048, medix 1024).")
    temperature: float = Field(0.0, ge=0, description="0 = greedy decoding (the paper's evaluation).")
    system_prompt: str | None = Field(None, description="Optional system message before every question.")
    format_prompt: bool | None = Field(None, description="Wrap each question in the MediX-R1 format instruction "
                                       "(modality tag, think block, answer block); None = the protocol's "
                                       "(paper: no, medix: yes).")
    think_tag: Literal["think", "thinking"] | None = Field(None, description="None = the model zoo's tag.")
    batch_size: int = Field(8, ge=1, description="Questions per generate() call (local backend).")
    max_concurrency: int = Field(64, ge=1, description="Requests in flight at once per policy server (openai "
                                 "backend); halved on timeouts, won back as replies arrive.")
    timeout_s: float = Field(600.0, gt=0, description="Per-request timeout (openai backend).")
    max_retries: int = Field(3, ge=0, description="Retries per sample before it is recorded as failed.")
    item_timeout_s: float | None = Field(None, gt=0, description="Bound on one item's generation, every try "
                                         "together (openai backend); None = 2 × timeout_s: a server that sends "
                                         "nothing costs two timeouts per item, not one per try (4 by default), "
                                         "while quick failures (5xx, refused) still get their retries.")
    allow_text_only: bool = Field(False, description="Ask a VLM item whose image is missing without it (stated in "
                                  "every report). Off: such an item is a failed generation, counted and shown.")
    max_consecutive_failures: int = Field(8, ge=0, description="Policy server (openai backend): after this many "
                                          "unanswered tries in a row the phase stops, keeping what was done "
                                          "(0 = never).")
    retry_failed: bool = Field(False, description="On resume, drop failed records and try those samples again.")
    refresh_changed: bool = Field(False, description="On resume, regenerate items whose stored prompt no longer "
                                  "matches the data (else such a mismatch stops the run).")
    judge: JudgeConfig = Field(default_factory=_eval_judge, description="The judge (see docs/judge.md).")
    judge_rounds: int = Field(3, ge=1, description="Rounds in the judge conversation (paper: 3).")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for the 95% intervals (0 = none).")
    seed: int = Field(0, description="Bootstrap seed (fixed, so re-scoring gives identical intervals).")
    report_samples: int = Field(10, ge=0, description="Responses per task shown in report.html.")

    @model_validator(mode="before")
    @classmethod
    def _single_server_keys(cls, values):
        """Configs written before several servers: `base_url: URL` and `port: N` (of `serve`)."""
        if isinstance(values, dict) and ("base_url" in values or "port" in values):
            values = dict(values)
            if "base_url" in values:
                url = values.pop("base_url")
                values.setdefault("base_urls", [url] if isinstance(url, str) else url)
            if "port" in values:
                values["policy_server"] = {**(values.get("policy_server") or {}), "port": values.pop("port")}
        return values

    @field_validator("judge", mode="before")
    @classmethod
    def _eval_judge_defaults(cls, value, info: ValidationInfo):
        """A partial `judge:` section (YAML or flags) starts from the protocol's judge defaults, not the reward's."""
        defaults = info.data.get("protocol", PAPER_PROTOCOL).judge_defaults
        return {**defaults, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _protocol_defaults(self) -> "EvalConfig":
        for key in ("max_new_tokens", "format_prompt"):  # None = the protocol's
            if getattr(self, key) is None:
                object.__setattr__(self, key, getattr(self.protocol, key))
        return self

    @model_validator(mode="after")
    def _serve_needs_servers(self) -> "EvalConfig":
        if self.serve and not get_backend(self.backend).served:
            raise ValueError(f"serve starts vLLM servers for the policy, which backend '{self.backend}' does not use; "
                             "add --backend openai (or drop --serve)")
        if self.serve and self.judge_server is not None and not get_backend(self.judge.backend).served:
            raise ValueError("judge_server (--judge-serve-*) starts judge servers, which judge backend "
                             f"'{self.judge.backend}' does not use; add --judge-backend openai")
        return self

    @model_validator(mode="after")
    def _order_phases(self) -> "EvalConfig":
        if len(set(self.phases)) != len(self.phases):
            raise ValueError(f"phases repeat: {self.phases}")
        ordered = [p for p in PHASES if p in self.phases]
        if not ordered:
            raise ValueError("phases is empty; give one or more of generate, judge, score")
        if ordered != list(self.phases):
            object.__setattr__(self, "phases", ordered)
        return self

    def generator_identity(self) -> dict:
        """Everything on the policy's side that can change a generation; stored in every generation record and
        in run.json, so a resumed run never mixes generations of two set-ups."""
        identity = {"model": self.model, "protocol": self.protocol.name, "backend": self.backend,
                    "temperature": self.temperature, "max_new_tokens": self.max_new_tokens,
                    "format_prompt": self.format_prompt, "think_tag": self.think_tag or zoo_entry(self.model).think_tag,
                    "system_prompt_sha256": sha256(self.system_prompt)}
        # Each key below is absent when off, so the identities of earlier runs still match.
        if self.official_tasks:
            identity["prompts"] = "official tasks file"
        if self.allow_text_only:
            identity["allow_text_only"] = True
        if get_backend(self.backend).in_process:  # the hub commit medix loads (a server's model is its own)
            from medix.models import model_revision

            revision = model_revision(self.model)
            if revision:
                identity["model_revision"] = revision
        return identity

    @classmethod
    def from_sources(cls, yaml_path: str | Path | None, flags: dict[str, Any]) -> "EvalConfig":
        """`medix eval run`'s config: the YAML file's values, then each flag given on the command line.

        `flags` holds only the flags given (a flag left at its default never overrides the file), under the
        command's parameter names; `flag_overrides` says where each one goes. `sample` is the bundled sample
        set's folder (`medix.eval.runner.sample_dir()`, which `--sample` chooses).

            >>> EvalConfig.from_sources(None, {"model": "m", "judge_model": "qwen/qwen3-14b"}).judge.model
            'qwen/qwen3-14b'
        """
        base = read_yaml(yaml_path) if yaml_path else {}
        source = f"{yaml_path} + command-line flags" if yaml_path else "command-line flags"
        cfg = build(cls, deep_merge(base, flag_overrides(flags, base)), source)
        for flag, backend, option in (("base_url", cfg.backend, "--backend"),
                                      ("judge_url", cfg.judge.backend, "--judge-backend")):
            if flags.get(flag) is not None and not get_backend(backend).served:
                raise MedixError(f"--{flag.replace('_', '-')} names a server, but {option} is {backend!r}, which runs "
                                 f"the model in this process: add {option} openai to use the server, or drop the flag")
        return cfg
