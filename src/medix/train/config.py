"""`medix train` config: one YAML → a validated TrainConfig (data, model, algorithm, rollout, reward, trainer).

    medix train --config configs/medix-r1-8b-dapo.yaml trainer.max_steps=10 algorithm.recipe=grpo

Values from a recipe (`train/recipes/<name>.yaml`) fill the algorithm fields the file leaves unset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from medix.backends import get_backend
from medix.config import ConfigModel, ServerURL, build, deep_merge, read_yaml
from medix.errors import MedixError
from medix.safe_text import display_url
from medix.models import SMOLLM2
from medix.registry import Registry
from medix.rewards.config import RewardConfig
from medix.serving.config import JudgeServeConfig
from medix.train.trl_fields import check_passthrough, check_report_to, coerce

RECIPE_DIR = Path(__file__).parent / "recipes"
# A new recipe is a YAML file there: its name is the file name.
RECIPES: Registry[Path] = Registry("recipe", add="train/recipes/NAME.yaml",
                                   entries=[(path.stem, path) for path in sorted(RECIPE_DIR.glob("*.yaml"))])


class _TrlSection(BaseModel):
    """A section that also takes any TRL GRPOConfig field under TRL's own name (train/trl_args.py)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)
    _section: ClassVar[str] = ""

    @model_validator(mode="after")
    def _trl_names(self):
        extras = self.model_extra or {}
        check_passthrough(self._section, extras, sorted(type(self).model_fields))
        for key, value in extras.items():  # typed as TRL's dataclass types them: YAML 1.1 reads 1e-8 as text
            extras[key] = coerce(self._section, key, value)
        return self

class FewShot(ConfigModel):
    problem: str = Field(..., description="An example question.")
    response: str = Field(..., description="Its answer written in the target format (tag, think, answer).")


class DataConfig(ConfigModel):
    train: str = Field(..., description="Training samples: local .jsonl/.json/.parquet or hub `name@split`.")
    eval: str | None = Field(None, description="Held-out samples for validation (same formats). None = no validation.")
    revision: str | None = Field(None, description="Branch, tag or commit of the hub datasets in `train` / `eval`; "
                                 "None = main, resolved to its commit (recorded in OUTPUT/config.json).")
    eval_limit: int | None = Field(64, ge=1, description="Validation samples used at each validation.")
    limit: int | None = Field(None, ge=1, description="Use only the first N training samples.")
    max_prompt_tokens: int = Field(4352, ge=16, description="Longer prompts are filtered out and counted "
                                   "(paper: 4352).")
    on_invalid: Literal["error", "skip"] = Field("error", description="A bad row stops the run, or is skipped "
                                                 "and counted.")
    num_proc: int | None = Field(None, ge=1, description="Processes for measuring prompt lengths and validating a "
                                 "hub split (datasets' num_proc); None = one. The work runs once per node and is "
                                 "cached, so a restart on unchanged data reads the cache.")
    think_tag: Literal["think", "thinking"] = Field("think", description="Reasoning tag the prompt asks for.")
    prompt_template: str | None = Field(None, description="Jinja format prompt; None = the packaged one.")
    system_prompt: str | None = Field(None, description="Optional system message before every question.")
    few_shot: list[FewShot] = Field(default_factory=list, description="Worked examples placed as earlier chat "
                                    "turns; small policies copy the answer format from them.")


class LoraConfig(ConfigModel):
    enabled: bool = Field(False, description="Train LoRA adapters (peft) instead of all weights.")
    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha.")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] | str = Field("all-linear", description="Modules to adapt (peft syntax).")


class ModelConfig(ConfigModel):
    name: str = Field(SMOLLM2, description="Policy: embedded name, hub id or folder (text LM or Qwen-VL).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; auto = bfloat16 on GPU, float32 on CPU (medix.models.training_dtype).")
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory (paper-scale runs).")
    freeze_vision: bool = Field(False, description="Freeze the vision tower (the paper trains it: false).")
    attn_implementation: str | None = Field(None, description="e.g. flash_attention_2 on GPU; None = default.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA option.")
    min_pixels: int | None = Field(None, ge=1, description="Vision policies: smaller images are scaled up to this "
                                   "many pixels, aspect kept (official: 262144); None = the processor's default.")
    max_pixels: int | None = Field(None, ge=1, description="Vision policies: larger images are scaled down to this "
                                   "many pixels (official: 4194304); None = the processor's default.")


class DynamicSamplingConfig(ConfigModel):
    enabled: bool = Field(False, description="DAPO online filtering: drop groups whose mean reward is extreme.")
    low: float = Field(0.01, description="Drop groups with mean overall reward <= low (official: 0.01).")
    high: float = Field(0.99, description="Drop groups with mean overall reward >= high (official: 0.99).")
    min_std: float = Field(0.0, ge=0, description="Also drop groups whose reward std (Bessel-corrected, as TRL's "
                           "advantage) is below this, e.g. 1e-6 for all-equal groups (zero advantage). 0 = off, "
                           "the official rule; zero-variance groups kept are logged either way.")
    max_attempts: int = Field(20, ge=1, description="Generation rounds per batch, the first included (official "
                              "max_try_make_batch: 20).")
    on_exhausted: Literal["error", "pad"] = Field(
        "error", description="After max_attempts rounds without a full batch: 'error' stops the run naming the "
        "numbers (official); 'pad' fills the batch with dropped groups at zero advantage (small CPU runs).")


class AlgorithmConfig(_TrlSection):
    _section: ClassVar[str] = "algorithm"
    recipe: str = Field("dapo", description=f"Paper settings for the algorithm: {', '.join(RECIPES)} "
                        "(train/recipes/<name>.yaml).")
    loss_type: str | None = Field(None, description="TRL loss_type (recipe: dapo → 'dapo', grpo → 'grpo').")
    beta: float | None = Field(None, ge=0, description="KL coefficient (grpo: 0.01; dapo/gspo: 0).")
    epsilon: float | None = Field(None, gt=0, description="Lower clip range.")
    epsilon_high: float | None = Field(None, gt=0, description="Upper clip range (DAPO clip-higher).")
    importance_sampling_level: Literal["token", "sequence"] | None = Field(
        None, description="'sequence' = GSPO's sequence-level importance ratio.")
    scale_rewards: Literal["group", "batch", "none"] | None = Field(None, description="Advantage scaling.")
    delta: float | None = Field(None, gt=1, description="Dual-clip constant (TRL's two-sided clip `delta`): for a "
                                "negative advantage the ratio counts up to delta, no further (official: 3.0).")
    dynamic_sampling: DynamicSamplingConfig = Field(default_factory=DynamicSamplingConfig,
                                                    description="DAPO dynamic sampling (recipe dapo enables it).")

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, name: str) -> str:
        return RECIPES.check(name)


class RolloutConfig(_TrlSection):
    _section: ClassVar[str] = "rollout"

    @field_serializer("vllm_server_base_url")
    def _public_url(self, url: str | None) -> str | None:
        """Dumped without the credentials inside the URL (`medix.safe_text.display_url`)."""
        return None if url is None else display_url(url)

    num_generations: int = Field(5, ge=2, description="Group size G (paper: 5).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature for rollouts.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling for rollouts.")
    max_completion_tokens: int = Field(4096, ge=1, description="Response length cap (paper: 4096); TRL's name "
                                       "max_completion_length is accepted too.",
                                       validation_alias=AliasChoices("max_completion_tokens", "max_completion_length"))
    engine: Literal["transformers", "vllm"] = Field("transformers", description="Generation engine for rollouts "
                                                    "(its earlier name `backend` is still read).",
                                                    validation_alias=AliasChoices("engine", "backend"))
    vllm_mode: Literal["colocate", "server"] = Field("colocate", description="vLLM in the training process, or a "
                                                     "separate `trl vllm-serve` server (multi-node).")
    vllm_server_base_url: ServerURL | None = Field(None, description="URL of the rollout vLLM server (server mode).")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="vLLM memory share in colocate mode.")
    vllm_tensor_parallel_size: int = Field(1, ge=1, description="vLLM tensor parallelism (colocate mode).")
    vllm_max_model_length: int | None = Field(
        None, ge=16, description="vLLM context length; None = data.max_prompt_tokens + max_completion_tokens (vLLM "
        "would otherwise reserve KV cache for the model's whole context, 262,144 tokens for Qwen3-VL).")
    vllm_enable_sleep_mode: bool = Field(
        False, description="Colocate mode: release vLLM's weights and KV cache during the update and wake it for the "
        "next rollout (TRL's flag; the paper configs turn it on, as the official trainer frees its rollout engine).")
    vllm_importance_sampling_correction: bool = Field(
        True, description="TRL's truncated importance-sampling correction for the vLLM-vs-trainer logprob mismatch "
        "(TRL default: on). The official trainer (EasyR1) has none, so the paper configs turn it off.")


class MonitorConfig(ConfigModel):
    """Reward-hacking monitor (train/monitor.py): thresholds of its warnings."""

    enabled: bool = Field(True, description="Log the monitor/* signals each step and warn on the thresholds below.")
    max_judge_embed_disagreement: float = Field(
        0.3, ge=0, le=1, description="Warn when the share of a step's completions that the judge accepts while the "
        "embedding rejects them exceeds this (the judge may be rewarding verdict bait).")
    warmup_steps: int = Field(3, ge=0, description="No disagreement warning during the first N steps (a random "
                              "early policy disagrees by chance).")
    max_length_ratio: float = Field(3.0, gt=1, description="Warn when the mean answer length exceeds this multiple "
                                    "of the baseline (length padding).")
    baseline_steps: int = Field(10, ge=1, description="Steps (rollouts) whose mean answer length is the baseline; "
                                "no length warning before they are complete.")


class TrainerConfig(_TrlSection):
    _section: ClassVar[str] = "trainer"
    output_dir: str = Field("runs/medix", description="Checkpoints, logs, completions.jsonl, summary.json.")
    learning_rate: float = Field(1e-6, gt=0, description="Paper: 1e-6.")
    lr_scheduler_type: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="Learning-rate schedule (official: constant, no warmup).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (official: 0.01).")
    num_train_epochs: float = Field(2.0, gt=0, description="Paper: 2 epochs.")
    max_steps: int = Field(-1, ge=-1, description="Stop after N optimizer steps (-1 = use epochs; 0 is refused: "
                           "it would train nothing).")
    per_device_train_batch_size: int = Field(5, ge=1, description="Completions per device per micro-step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps per optimizer step.")
    steps_per_generation: int | None = Field(None, ge=1, description="Optimizer micro-steps served by one rollout.")
    logging_steps: int = Field(1, ge=1, description="Log metrics and sample completions every N steps.")
    log_completions: int = Field(8, ge=0, description="Completions appended to completions.jsonl per logging step.")
    save_steps: int = Field(100, ge=1, description="Checkpoint every N steps.")
    save_total_limit: int | None = Field(3, ge=1, description="Keep the last K checkpoints.")
    eval_steps: int | None = Field(None, ge=1, description="Validate every N steps (needs data.eval).")
    eval_temperature: float = Field(0.0, ge=0, description="Validation sampling temperature; 0 = greedy "
                                    "(official validation: 0.6).")
    eval_top_p: float = Field(1.0, gt=0, le=1, description="Validation nucleus sampling (official: 0.95).")
    report_to: list[str] = Field(
        default_factory=lambda: ["json"], description="Metric loggers: any integration transformers' report_to "
        "accepts (tensorboard, wandb, mlflow, trackio, ...) plus 'json', which writes metrics.jsonl.")
    seed: int = Field(42, description="Seed for data order, sampling and init.")
    bf16: bool | None = Field(None, description="bfloat16 training; None = on when CUDA is available.")
    resume_from_checkpoint: str | bool | None = Field(None, description="Checkpoint folder, or true for the latest.")

    @field_validator("report_to", mode="before")
    @classmethod
    def _reporters(cls, value):
        return check_report_to([value] if isinstance(value, str) else value)


class TrainConfig(ConfigModel):
    data: DataConfig = Field(..., description="Training / validation data and prompt format.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The policy.")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig, description="GRPO / DAPO / GSPO recipe.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Group sampling.")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="Composite reward (and its judge).")
    judge_serve: JudgeServeConfig = Field(default_factory=JudgeServeConfig, description="Managed judge server.")
    trainer: TrainerConfig = Field(default_factory=TrainerConfig, description="Optimisation and checkpoints.")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig, description="Reward-hacking monitor.")
    accelerate_config: str | None = Field(
        None, description="The accelerate config this run is launched with (relative paths from the training "
        "config's folder); `medix train --plan` plans that launch when --accelerate-config is not given.")

    @model_validator(mode="after")
    def _one_home(self) -> "TrainConfig":
        """A TRL name given in `algorithm`, `rollout` or `trainer` must not be a medix field of another section
        (`rollout.learning_rate` would override `trainer.learning_rate` unchecked) nor be given in two."""
        # the ones that feed GRPOConfig (monitor.warmup_steps is not TRL's)
        sections = ("algorithm", "rollout", "trainer")
        owner = {name: section for section in sections for name in type(getattr(self, section)).model_fields}
        given: dict[str, str] = {}
        for section in sections:
            for key in getattr(self, section).model_extra or {}:
                if owner.get(key, section) != section:
                    raise ValueError(f"{section}.{key}: {key} is medix's {owner[key]}.{key}; give it there (its "
                                     "checks and --plan read it there)")
                if key in given:
                    raise ValueError(f"{key} is given twice, as {given[key]}.{key} and {section}.{key}; keep one")
                given[key] = section
        return self

    @model_validator(mode="after")
    def _checks(self) -> "TrainConfig":
        t, r = self.trainer, self.rollout
        batch = t.per_device_train_batch_size * (t.steps_per_generation or t.gradient_accumulation_steps)
        if batch % r.num_generations:
            raise ValueError(f"per_device_train_batch_size × steps_per_generation ({batch}) must be a multiple of "
                             f"rollout.num_generations ({r.num_generations})")
        if t.max_steps == 0:
            raise ValueError("trainer.max_steps=0 would train nothing: give N >= 1 steps, or -1 to train for "
                             "trainer.num_train_epochs")
        if t.eval_steps and not self.data.eval:
            raise ValueError("trainer.eval_steps is set but data.eval is empty: give a held-out file")
        if r.engine == "vllm" and r.vllm_mode == "server" and not r.vllm_server_base_url:
            raise ValueError("rollout.vllm_mode=server needs rollout.vllm_server_base_url")
        if self.judge_serve.enabled and not get_backend(self.reward.judge.backend).served:
            raise ValueError("judge_serve.enabled needs reward.judge.backend=openai (the run talks to the server)")
        return self


def parse_override(text: str) -> tuple[list[str], Any]:
    """`trainer.max_steps=10` → (["trainer", "max_steps"], 10); the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise MedixError(f"override '{text}' must look like key.sub=value")
    try:
        return key.strip().split("."), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip().split("."), value


def recipe_defaults(name: str) -> dict:
    return read_yaml(RECIPES[name])


def load_train_config(path: str | Path | None, overrides: list[str] = (), base: dict | None = None) -> TrainConfig:
    """File (or `base`), then overrides, then recipe defaults under anything set explicitly."""
    data = deep_merge(base or {}, read_yaml(path) if path else {})
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise MedixError(f"override '{text}': '{k}' is not a section")
        node[keys[-1]] = value
    recipe = (data.get("algorithm") or {}).get("recipe", "dapo")
    if recipe not in RECIPES:
        raise MedixError(f"algorithm.recipe: {RECIPES.unknown(recipe)}")
    data = deep_merge(recipe_defaults(recipe), data)
    return build(TrainConfig, data, str(path or "config"))
