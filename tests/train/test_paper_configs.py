"""The paper configs against the official training scripts. The official values are written here from the
scripts and EasyR1's defaults (docs/fidelity.md, "Training"), not read from the YAML files under test."""

import pytest

from helpers import REPO
from medix.train.config import load_train_config
from medix.train.trl_args import grpo_args

GPUS = 8  # every official script: 1 node × 8 GPUs
# Shared by all five official scripts (their config.yaml and EasyR1 defaults).
COMMON = {
    "train_data": "MBZUAI/medix-rl-data@train", "eval_data": "MBZUAI/medix-rl-data@test",
    "max_prompt_tokens": 4352, "max_response_tokens": 4096, "group_size": 5,
    "temperature": 1.0, "top_p": 1.0, "eval_temperature": 0.6, "eval_top_p": 0.95,
    "lr": 1e-6, "weight_decay": 0.01, "lr_schedule": "constant", "epochs": 2, "dual_clip": 3.0,
    "rollout_prompts": 512, "update_prompts": 128, "min_pixels": 262144, "max_pixels": 4194304,
    "train_vision": True, "save_every_rollouts": 5, "keep_checkpoints": 3,
    "judge": "Qwen/Qwen3-4B-Instruct-2507", "embedder": "abhinand/MedEmbed-large-v0.1",
    "weights": (0.1, 0.575, 0.375, 0.05), "embed_threshold": 0.8, "judge_error": "zero",
    "think_tags": ("thinking",),
    "advantage_scale": "group",  # EasyR1's GRPO advantage: (reward - group mean) / group std
}
DAPO = {"loss": "token-mean", "kl": 0.0, "clip": (0.2, 0.28), "ratio": "token", "filter": (0.01, 0.99, 20)}
OFFICIAL = {
    "medix-r1-2b-dapo": {**DAPO, "model": "Qwen/Qwen3-VL-2B-Instruct", "rollout_tp": 2},
    "medix-r1-8b-dapo": {**DAPO, "model": "Qwen/Qwen3-VL-8B-Instruct", "rollout_tp": 2},
    "medix-r1-30b-dapo": {**DAPO, "model": "Qwen/Qwen3-VL-30B-A3B-Thinking", "rollout_tp": 8},
    "medix-r1-8b-grpo": {"model": "Qwen/Qwen3-VL-8B-Instruct", "loss": "token-mean", "kl": 0.01, "clip": (0.2, 0.3),
                         "ratio": "token", "filter": None, "rollout_tp": 2},
    "medix-r1-7b-gspo": {"model": "Qwen/Qwen2.5-VL-7B-Instruct", "loss": "sequence-mean", "kl": 0.0,
                         "clip": (3e-4, 4e-4), "ratio": "sequence", "filter": None, "rollout_tp": 2},
}
LOSS = {"dapo": "token-mean", "grpo": "sequence-mean"}  # TRL loss_type → how the loss is averaged


def medix_values(cfg) -> dict:
    """The same settings, as medix's config and the GRPOConfig it builds express them."""
    args, t, ds = grpo_args(cfg), cfg.trainer, cfg.algorithm.dynamic_sampling
    completions_per_rollout = t.per_device_train_batch_size * t.steps_per_generation * GPUS
    completions_per_update = t.per_device_train_batch_size * t.gradient_accumulation_steps * GPUS
    updates_per_rollout = completions_per_rollout // completions_per_update
    w = cfg.reward.weights
    return {
        "train_data": cfg.data.train, "eval_data": cfg.data.eval, "max_prompt_tokens": cfg.data.max_prompt_tokens,
        "max_response_tokens": args.max_completion_length, "group_size": args.num_generations,
        "temperature": args.temperature, "top_p": args.top_p, "eval_temperature": t.eval_temperature,
        "eval_top_p": t.eval_top_p, "lr": args.learning_rate, "weight_decay": args.weight_decay,
        "lr_schedule": str(args.lr_scheduler_type.value), "epochs": args.num_train_epochs, "dual_clip": args.delta,
        "rollout_prompts": completions_per_rollout // args.num_generations,
        "update_prompts": completions_per_update // args.num_generations,
        "min_pixels": cfg.model.min_pixels, "max_pixels": cfg.model.max_pixels,
        "train_vision": not cfg.model.freeze_vision,
        "save_every_rollouts": t.save_steps / updates_per_rollout, "keep_checkpoints": t.save_total_limit,
        "judge": cfg.reward.judge.model, "embedder": cfg.reward.embedder.model,
        "weights": (w.format, w.judge, w.embed, w.modality), "embed_threshold": cfg.reward.embed_threshold,
        "judge_error": cfg.reward.on_judge_error, "think_tags": tuple(cfg.reward.think_tags),
        "model": cfg.model.name, "loss": LOSS[args.loss_type], "kl": args.beta,
        "clip": (args.epsilon, args.epsilon_high), "ratio": args.importance_sampling_level,
        "filter": (ds.low, ds.high, ds.max_attempts) if ds.enabled else None,
        "rollout_tp": cfg.rollout.vllm_tensor_parallel_size,
        "advantage_scale": args.scale_rewards,
    }


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_paper_config_follows_the_official_script(name):
    cfg = load_train_config(REPO / "configs" / f"{name}.yaml")
    expected = {**COMMON, **OFFICIAL[name]}
    got = medix_values(cfg)
    assert {k: got[k] for k in expected} == expected, name
    assert cfg.data.think_tag == "thinking" and cfg.reward.weights.format == 0.1
    if expected["filter"]:
        assert cfg.algorithm.dynamic_sampling.on_exhausted == "error" and cfg.algorithm.dynamic_sampling.low == 0.01


def test_every_paper_config_is_checked():
    assert {p.stem for p in (REPO / "configs").glob("medix-r1-*.yaml")} == set(OFFICIAL)
