"""TrainConfig → TRL's `GRPOConfig`: medix's documented fields, plus any GRPOConfig field passed through.

    medix train --config configs/medix-r1-8b-dapo.yaml trainer.warmup_steps=10 trainer.push_to_hub=true \
        rollout.vllm_max_model_length=8448 trainer.report_to=[wandb,json]

The `algorithm`, `rollout` and `trainer` sections accept, besides their own fields, every field of the installed
`GRPOConfig` (which includes all of transformers' `TrainingArguments`) under TRL's own name. Such a key is
checked against the real dataclass when the config is read — an unknown name is an error that suggests the
nearest valid one, a value is typed as the dataclass types it — and handed to GRPOConfig. A name has one home:
a medix field is given in its own section only (`rollout.learning_rate` is refused for `trainer.learning_rate`),
a TRL name in one section only, and the fields medix derives from its own are refused with the field that sets
them (`medix.train.trl_fields.MANAGED`).
"""

from __future__ import annotations

import logging
from typing import Any

from trl import GRPOConfig

from medix.errors import MedixError
from medix.train.config import TrainConfig
from medix.train.trl_fields import EXTRA_REPORTERS

log = logging.getLogger(__name__)

def check_installed(cfg: TrainConfig) -> None:
    """Before any model loads: each package the settings need, named with the setting and its install line."""
    import importlib.util
    import os

    from transformers.utils import strtobool

    needs = []
    if cfg.rollout.engine == "vllm":  # TRL's use_vllm is refused in a config: rollout.engine is its one home
        needs.append(("vllm", "rollout.engine=vllm"))
    if strtobool(os.environ.get("ACCELERATE_USE_DEEPSPEED", "false")):
        needs.append(("deepspeed", "the DeepSpeed accelerate config"))
    for module, setting in needs:
        if importlib.util.find_spec(module) is None:
            raise MedixError(f"{setting} needs {module}, which is not installed: pip install 'medix[gpu]' on the GPU "
                             "node (or choose rollout.engine=transformers)")
    check_reporters_installed(list(cfg.trainer.report_to))


def check_reporters_installed(names: list[str]) -> None:
    """Before the trainer exists: a logger whose package is missing is named with its install line."""
    from transformers.integrations import get_available_reporting_integrations

    available = set(get_available_reporting_integrations())
    missing = [n for n in names if n not in (*EXTRA_REPORTERS, "all", "none") and n not in available]
    if missing:
        raise MedixError(f"trainer.report_to: {', '.join(missing)} is not installed (pip install {' '.join(missing)}; "
                         "on a GPU node `pip install 'medix[gpu]'` brings tensorboard), or remove it from report_to")


def mapped_fields(cfg: TrainConfig) -> dict[str, Any]:
    """GRPOConfig keyword arguments from medix's own fields (TRL names on the left)."""
    import torch

    from medix.rewards.composite import REWARD_WEIGHTS

    a, r, t = cfg.algorithm, cfg.rollout, cfg.trainer
    cuda = torch.cuda.is_available()
    return dict(
        output_dir=t.output_dir, learning_rate=t.learning_rate, num_train_epochs=t.num_train_epochs,
        lr_scheduler_type=t.lr_scheduler_type, weight_decay=t.weight_decay,
        max_steps=t.max_steps, per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, steps_per_generation=t.steps_per_generation,
        logging_steps=t.logging_steps, save_strategy="steps", save_steps=t.save_steps,
        save_total_limit=t.save_total_limit, seed=t.seed, data_seed=t.seed,
        bf16=cuda if t.bf16 is None else t.bf16, **cpu_fields(cuda),
        report_to=[x for x in t.report_to if x not in EXTRA_REPORTERS],
        **{checkpointing_field(): cfg.model.gradient_checkpointing},
        num_generations=r.num_generations, temperature=r.temperature, top_p=r.top_p,
        max_completion_length=r.max_completion_tokens,
        use_vllm=r.engine == "vllm", vllm_mode=r.vllm_mode, vllm_server_base_url=r.vllm_server_base_url,
        vllm_gpu_memory_utilization=r.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=r.vllm_tensor_parallel_size,
        # vLLM otherwise sizes its KV cache for the model's whole context (262,144 tokens for Qwen3-VL) and may
        # not start inside its memory share; a rollout never needs more than prompt + completion.
        vllm_max_model_length=r.vllm_max_model_length or cfg.data.max_prompt_tokens + r.max_completion_tokens,
        vllm_enable_sleep_mode=r.vllm_enable_sleep_mode,
        vllm_importance_sampling_correction=r.vllm_importance_sampling_correction,
        loss_type=a.loss_type, beta=a.beta, epsilon=a.epsilon, epsilon_high=a.epsilon_high, delta=a.delta,
        importance_sampling_level=a.importance_sampling_level, scale_rewards=a.scale_rewards,
        reward_weights=list(REWARD_WEIGHTS), log_completions=False, remove_unused_columns=False,
    )


def _deepspeed_launch() -> bool:
    """Started by a launcher (WORLD_SIZE set) with a DeepSpeed accelerate config."""
    import os

    from transformers.utils import strtobool

    return "WORLD_SIZE" in os.environ and bool(strtobool(os.environ.get("ACCELERATE_USE_DEEPSPEED", "false")))


def cpu_fields(cuda: bool) -> dict[str, Any]:
    """Where the processes run without CUDA. Plain processes: `use_cpu` (accelerate's multi-CPU state). Under
    DeepSpeed, use_cpu must stay False (transformers takes its DeepSpeed branch only then) and gloo is named:
    accelerate 1.16 otherwise leaves the backend unset and every process thinks it is rank 0."""
    if cuda:
        return {"use_cpu": False}
    return {"use_cpu": False, "ddp_backend": "gloo"} if _deepspeed_launch() else {"use_cpu": True}


def cpu_process_group(timeout_s: int) -> None:
    """Several plain processes without CUDA (accelerate launch on CPU): start the gloo process group here, with
    the run's `ddp_timeout`, which transformers drops under use_cpu=True (a collective one process never joins
    then waits 30 minutes). accelerate uses a process group that already exists. (Under DeepSpeed the timeout
    reaches DeepSpeed's own init: nothing to do.)"""
    import os
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) < 2 or dist.is_initialized() \
            or _deepspeed_launch():
        return
    dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s), rank=int(os.environ["RANK"]),
                            world_size=int(os.environ["WORLD_SIZE"]))


def checkpointing_field() -> str:
    """transformers' name for gradient checkpointing: `activation_checkpointing` where it exists (it wins over
    the older `gradient_checkpointing`), else `gradient_checkpointing` (transformers before 5.18, the GPU
    stack's vLLM 0.31 range)."""
    from medix.train.trl_fields import grpo_fields

    return "activation_checkpointing" if "activation_checkpointing" in grpo_fields() else "gradient_checkpointing"


def passthrough_fields(cfg: TrainConfig) -> dict[str, Any]:
    """The TRL-named keys given in the algorithm / rollout / trainer sections, in that order."""
    out: dict[str, Any] = {}
    for section in (cfg.algorithm, cfg.rollout, cfg.trainer):
        out.update(section.model_extra or {})
    return out


def grpo_args(cfg: TrainConfig) -> GRPOConfig:
    """The GRPOConfig for `cfg`. Built before the policy loads: under DeepSpeed ZeRO-3 its construction arms
    transformers' zero.Init hook, so each rank loads only its shard (as TRL's own scripts do)."""
    kwargs = mapped_fields(cfg)
    for key, value in passthrough_fields(cfg).items():
        if key in kwargs and kwargs[key] != value:
            log.info("TRL field %s=%r overrides medix's %r", key, value, kwargs[key])
        kwargs[key] = value
    cpu_process_group(int(kwargs.get("ddp_timeout", 1800)))
    try:
        return GRPOConfig(**kwargs)
    except (ValueError, TypeError) as err:
        given = sorted(passthrough_fields(cfg))
        where = f" (TRL fields given: {', '.join(given)})" if given else ""
        raise MedixError(f"TRL refused the training settings{where}: {err}") from None
