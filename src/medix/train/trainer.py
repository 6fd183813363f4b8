"""Build TRL's GRPOTrainer from a TrainConfig and run it.

    medix train --config configs/medix-r1-8b-dapo.yaml
    accelerate launch --config_file configs/accelerate/zero3.yaml -m medix train --config configs/medix-r1-8b-dapo.yaml

GRPO / DAPO / GSPO differ only in the GRPOConfig fields their recipe sets (train/recipes/*.yaml).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from medix.errors import MedixError
from medix.rewards.composite import trl_reward_functions
from medix.train.callbacks import CompletionsLogger, JsonMetricsLogger, ValidationCallback
from medix.train.config import TrainConfig
from medix.train.trl_rows import prepare
from medix.serving.placement import check_judge_reachable, managed_judge
from medix.train.monitor import RewardMonitor, policy_tokens
from medix.train.policy import has_vision_tower, load_policy, peft_config, prepare_policy
from medix.train.sampling import DynamicSamplingGRPOTrainer
from medix.train.trl_args import check_installed, grpo_args
from medix.train.validate import Validator

log = logging.getLogger(__name__)


@dataclass
class BuiltRun:
    trainer: DynamicSamplingGRPOTrainer
    data_report: dict = field(default_factory=dict)
    validator: Validator | None = None


def build_trainer(cfg: TrainConfig, model=None, processing=None, extra_reward_funcs=(), judge=None) -> BuiltRun:
    """The trainer for `cfg`. Tests pass a tiny `model` / `processing` and extra reward functions."""
    args = grpo_args(cfg)  # first: under ZeRO-3 it arms zero.Init, so the weights below load sharded
    if model is None:
        model, processing = load_policy(cfg.model)
    else:
        prepare_policy(model, processing, cfg.model)
    vision = has_vision_tower(model)
    if cfg.algorithm.beta and not model.config._name_or_path:
        # TRL builds the KL reference policy from the model's path; an in-memory policy gets one here.
        initial = Path(cfg.trainer.output_dir) / "initial_policy"
        model.save_pretrained(initial)
        processing.save_pretrained(initial)
        model.config._name_or_path = str(initial)
    train = prepare(cfg.data.train, cfg.data, processing, vision, cfg.data.limit)
    funcs, weights = trl_reward_functions(cfg.reward, judge=judge)
    funcs, weights = [*funcs, *extra_reward_funcs], [*weights, *([1.0] * len(extra_reward_funcs))]
    args.reward_weights = weights
    trainer = DynamicSamplingGRPOTrainer(
        model=model, reward_funcs=funcs, args=args, train_dataset=train.dataset, processing_class=processing,
        peft_config=peft_config(cfg.model), dynamic_sampling=cfg.algorithm.dynamic_sampling,
        skip_failed_groups=cfg.reward.on_judge_error == "skip_group", monitor=reward_monitor(cfg, funcs, processing),
        reward_source=funcs[0],
    )
    out = Path(cfg.trainer.output_dir)
    trainer.add_callback(CompletionsLogger(trainer, out / "completions.jsonl", cfg.trainer.log_completions))
    if "json" in cfg.trainer.report_to:
        trainer.add_callback(JsonMetricsLogger(out / "metrics.jsonl"))
    report = {"train_rows": len(train.dataset), "too_long": train.too_long, "images_ignored": train.images_dropped}
    validator = None
    if cfg.data.eval:
        held_out = prepare(cfg.data.eval, cfg.data, processing, vision, cfg.data.eval_limit)
        composite = funcs[0].composite  # the same reward (and judge, and cache) as training
        validator = Validator(held_out.dataset, processing, composite, cfg.rollout.max_completion_tokens,
                              cfg.data.eval_limit, cfg.trainer.eval_temperature, cfg.trainer.eval_top_p,
                              batch_size=trainer.args.per_device_eval_batch_size)
        if cfg.trainer.eval_steps:
            trainer.add_callback(ValidationCallback(trainer, validator, cfg.trainer.eval_steps, out))
    return BuiltRun(trainer, report, validator)


def reward_monitor(cfg: TrainConfig, funcs: list, processing) -> RewardMonitor | None:
    """The reward-hacking monitor over the `overall` function's results; answer lengths in policy tokens."""
    if not cfg.monitor.enabled:
        return None
    return RewardMonitor(cfg.monitor, cfg.reward, funcs[0], policy_tokens(processing))


def save_final(trainer, path: Path) -> None:
    """The final policy as a loadable HF folder. Under FSDP with SHARDED_STATE_DICT (fast, resumable
    checkpoints) transformers' save_model would write shards only; the state dict is gathered in full for
    this one save."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if trainer.is_fsdp_enabled and plugin is not None and "FULL_STATE_DICT" not in str(plugin.state_dict_type):
        log.info("gathering the FSDP-sharded policy into a full state dict for %s", path)
        plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(path))


def _recorded_revisions(file: Path) -> dict:
    try:
        return json.loads(file.read_text()).get("hub_revisions", {})
    except (OSError, ValueError, AttributeError):
        return {}


def _record_revisions(file: Path, cfg: TrainConfig, earlier: dict, first: bool) -> None:
    """config.json gains `hub_revisions`: the commit of every dataset and model this run read from the hub. A
    resumed run that finds another commit than its checkpoint was trained on stops and says which."""
    from medix import hub

    now = hub.loaded()
    moved = {k: (v, now[k]) for k, v in earlier.items() if k in now and now[k] != v}
    if moved:
        what, (old, new) = next(iter(moved.items()))
        raise MedixError(f"resuming {cfg.trainer.output_dir}: its checkpoints were trained on {what} at commit "
                         f"{old}, and the hub now serves {new}. Pin the old commit (data.revision or "
                         "model.name: org/name@<commit>) to go on, or start a new trainer.output_dir")
    if first:
        body = {**json.loads(cfg.model_dump_json()), "hub_revisions": {**earlier, **now}}
        file.write_text(json.dumps(body, indent=2))


def run_training(cfg: TrainConfig) -> dict:
    """Train, save the final policy in HF format, write OUTPUT/summary.json; returns the summary."""
    out = Path(cfg.trainer.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = int(os.environ.get("RANK", "0")) == 0  # under accelerate, one process writes the run's files
    earlier = _recorded_revisions(out / "config.json") if cfg.trainer.resume_from_checkpoint else {}
    if first:  # the commits a resumed run's checkpoints were trained on stay recorded until this run's are known
        (out / "config.json").write_text(json.dumps({**json.loads(cfg.model_dump_json()), "hub_revisions": earlier},
                                                    indent=2))
    from medix.judge.audit_store import warn_if_weak

    warn_if_weak(cfg.reward.judge, cfg.reward.weights.judge)
    check_installed(cfg)
    with managed_judge(cfg):
        check_judge_reachable(cfg)
        run = build_trainer(cfg)
        _record_revisions(out / "config.json", cfg, earlier, first)
        try:
            result = run.trainer.train(resume_from_checkpoint=cfg.trainer.resume_from_checkpoint)
            save_final(run.trainer, out / "final")
            _record_revisions(out / "config.json", cfg, earlier, first)  # with the reward's models, loaded lazily
        finally:
            run.trainer.reward_funcs[0].composite.close()
    monitor = run.trainer.monitor
    summary = {"global_step": result.global_step, "train_loss": result.training_loss, "data": run.data_report,
               "monitor_warnings": monitor.warnings if monitor else [], "log_history": run.trainer.state.log_history}
    if first:
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
