"""`medix ablate`: the paper's reward ablation as one command — one training run per reward preset and seed,
everything else shared, then every arm's held-out answers scored by ONE evaluation judge, and a report
(`train/ablation_report.py`).

    medix ablate --config configs/medix-r1-8b-dapo.yaml --output-dir runs/ablation             # 4 arms, seed 42
    medix ablate --config my.yaml --presets llm,composite --seeds 1,2 --output-dir OUT trainer.max_steps=200
    medix ablate --config my.yaml --output-dir OUT --print-launch      # a cluster: the accelerate lines, nothing run
    medix ablate report OUT

OUT/ablation.json is the plan (config, overrides, presets, seeds, the evaluation judge); OUT/<preset>-s<seed>/ is
an ordinary `medix train` folder plus `arm.json` (its config hashes) and `heldout.jsonl` / `heldout.json` (its
final policy's greedy answers on data.eval, scored by the evaluation judge under the composite weights);
OUT/base/ holds the untrained policy's, scored the same way. Re-running skips finished arms (summary.json and
final/ present, held-out scored), resumes an arm from its last checkpoint, and restarts one that has none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from medix.judge.config import JudgeConfig
from medix.rewards.config import RewardConfig, preset_weights
from medix.errors import MedixError
from medix.train.config import TrainConfig, load_train_config
from medix.files import read_json

log = logging.getLogger(__name__)

DEFAULT_PRESETS = ("composite", "llm", "embed", "llm+embed")
PLAN = "ablation.json"
BASE = "base"  # the untrained policy's held-out folder
# What differs between arms; everything else must be the same (`shared_hash`).
ARM_FIELDS = (("reward", "preset"), ("reward", "weights"), ("trainer", "seed"), ("trainer", "output_dir"),
              ("trainer", "resume_from_checkpoint"))


@dataclass(frozen=True)
class Arm:
    preset: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.preset}-s{self.seed}"

    def overrides(self, out: Path) -> list[str]:
        """Preset and seed as `key=value` overrides; the weights spelled out, so they win over a config's own block."""
        weights = [f"reward.weights.{k}={v!r}" for k, v in preset_weights(self.preset).items()]
        return [f"reward.preset={self.preset}", *weights, f"trainer.seed={self.seed}",
                f"trainer.output_dir={out / self.name}"]


@dataclass
class AblationPlan:
    """What an ablation folder was made for: the training config (a file, or a base dict for `medix demo`), the
    overrides every arm shares, the arms and the evaluation judge."""

    config: str | None
    overrides: list[str]
    presets: list[str]
    seeds: list[int]
    eval_judge: dict
    base: dict | None = None

    @property
    def arms(self) -> list[Arm]:
        return [Arm(p, s) for s in self.seeds for p in self.presets]

    def train_config(self, arm: Arm | None, out: Path) -> TrainConfig:
        extra = arm.overrides(out) if arm else []
        return load_train_config(self.config, [*self.overrides, *extra], base=self.base)

    def eval_reward(self, out: Path) -> RewardConfig:
        """The reward every arm's held-out answers are scored with: the composite weights, the evaluation judge."""
        reward = self.train_config(None, out).reward.model_dump()
        return RewardConfig.model_validate({**reward, "preset": "composite", "weights": {}, "judge": self.eval_judge})

    def same_experiment(self, other: "AblationPlan") -> list[str]:
        return [name for name in ("config", "overrides", "eval_judge", "base")
                if getattr(self, name) != getattr(other, name)]


def parse_list(text: str, flag: str, kind: Callable = str) -> list:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise MedixError(f"{flag}: give a comma-separated list, got {text!r}")
    try:
        values = [kind(item) for item in items]
    except ValueError:
        raise MedixError(f"{flag}: every item must be an integer, got {text!r}") from None
    if len(set(values)) != len(values):
        raise MedixError(f"{flag}: {text!r} names an item twice")
    return values


def make_plan(config: str | Path | None, overrides: list[str], presets: list[str], seeds: list[int] | None,
              eval_judge: str | Path | None, base: dict | None = None) -> AblationPlan:
    """Checks what can be checked before anything loads: presets known, data.eval set, the config valid."""
    for name in presets:
        try:
            preset_weights(name)  # the unknown name, with the nearest known one
        except ValueError as err:
            raise MedixError(f"--presets: {err}") from None
    path = str(Path(config).resolve()) if config else None
    cfg = load_train_config(path, list(overrides), base=base)
    if not cfg.data.eval:
        raise MedixError("an ablation scores every arm on held-out rows: set data.eval in the config (or pass "
                         "data.eval=FILE), the rows all arms are compared on")
    judge = JudgeConfig.from_sources(eval_judge, {}) if eval_judge else cfg.reward.judge
    return AblationPlan(path, list(overrides), list(presets), list(seeds or [cfg.trainer.seed]),
                judge.model_dump(mode="json"), base)


def claim(out: Path, plan: AblationPlan) -> AblationPlan:
    """Write the plan, or check it against the one already there; arms of a second call are added."""
    from medix.files import check_writable_dir

    check_writable_dir(out, f"--output-dir {out} cannot be written")
    out.mkdir(parents=True, exist_ok=True)
    path = out / PLAN
    if path.is_file():
        earlier = read_plan(out)
        differs = earlier.same_experiment(plan)
        if differs:
            raise MedixError(f"{out} holds an ablation of another experiment ({', '.join(differs)} differ): "
                             "use another --output-dir, or the same config and overrides to resume it")
        plan.presets = list(dict.fromkeys([*earlier.presets, *plan.presets]))
        plan.seeds = list(dict.fromkeys([*earlier.seeds, *plan.seeds]))
    path.write_text(json.dumps(plan.__dict__, indent=2))
    return plan


def clear(out: Path) -> None:
    """Delete what an ablation wrote in `out` (its plan, arms, base, report), nothing else there."""
    import shutil

    if not (out / PLAN).is_file():
        return
    plan = read_plan(out)
    for name in [*(arm.name for arm in plan.arms), BASE]:
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("ablation_report.json", "ablation.png", PLAN):
        (out / name).unlink(missing_ok=True)


def read_plan(out: Path) -> AblationPlan:
    path = out / PLAN
    if not path.is_file():
        raise MedixError(f"{out} is not an ablation folder: it has no {PLAN} (made by `medix ablate`)")
    try:
        return AblationPlan(**json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise MedixError(f"{path} is not an ablation plan ({err}): use another --output-dir") from None


def config_hash(cfg: TrainConfig, leave_out: tuple = ()) -> str:
    """sha256 (16 hex digits) of the resolved config, without the dotted fields in `leave_out`."""
    data = json.loads(cfg.model_dump_json())
    for section, key in leave_out:
        (data.get(section) or {}).pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def arm_state(folder: Path) -> str:
    """finished | resume | start."""
    from medix.train.run_folder import previous_run

    if (folder / "summary.json").is_file() and (folder / "final").is_dir():
        return "finished"
    return "resume" if any(n.startswith("checkpoint-") for n in previous_run(folder)) else "start"


def train_arm(plan: AblationPlan, arm: Arm, out: Path, rank: int = 0) -> TrainConfig:
    """Train one arm into OUT/<arm>: skipped when finished, resumed from its last checkpoint, else (re)started."""
    from medix.train.run_folder import claim_output_dir

    cfg = plan.train_config(arm, out)
    folder = out / arm.name
    state = arm_state(folder)
    if state == "finished":
        log.info("%s: finished earlier, not trained again", arm.name)
        return cfg
    claim_output_dir(cfg.trainer, resume=state == "resume", overwrite=state == "start", rank=rank)
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "arm.json").write_text(json.dumps({
            "preset": arm.preset, "seed": arm.seed, "weights": cfg.reward.weights.model_dump(),
            "config_hash": config_hash(cfg), "shared_hash": config_hash(cfg, ARM_FIELDS)}, indent=2))
    from medix.train.trainer import run_training

    run_training(cfg)
    return cfg


class HeldOutScorer:
    """Greedy answers of a policy on the plan's data.eval, scored by one CompositeReward (the evaluation judge,
    the composite weights) built once for every arm."""

    def __init__(self, plan: AblationPlan, out: Path):
        from medix.rewards.composite import CompositeReward

        self.plan, self.out = plan, out
        self.composite = CompositeReward(plan.eval_reward(out))

    def score(self, folder: Path, cfg: TrainConfig, model_name: str) -> dict:
        """Write folder/heldout.jsonl and heldout.json for the policy at `model_name`; returns the summary."""
        from medix.train.trl_rows import prepare
        from medix.train.policy import has_vision_tower, load_policy
        from medix.train.validate import Validator

        if (folder / "heldout.json").is_file():
            return read_json(folder / "heldout.json")
        if (Path(model_name) / "adapter_config.json").is_file():  # a LoRA run's final/ is an adapter: merge it
            from medix.train.policy import merge_lora

            model_name = merge_lora(model_name, str(Path(model_name).with_name("final-merged")))
        model, processing = load_policy(cfg.model.model_copy(update={"name": model_name}))
        held = prepare(cfg.data.eval, cfg.data, processing, has_vision_tower(model), cfg.data.eval_limit)
        validator = Validator(held.dataset, processing, self.composite, cfg.rollout.max_completion_tokens,
                              cfg.data.eval_limit, batch_size=cfg.trainer.per_device_eval_batch_size)
        summary = validator.run(model)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "heldout.jsonl", "w") as f:
            for record in validator.last:
                f.write(json.dumps(record, default=str) + "\n")
        result = {"policy": model_name, "summary": summary, "judge": self.composite.judge_identity,
                  "weights": self.composite.config.weights.model_dump(), "rows": len(validator.last)}
        (folder / "heldout.json").write_text(json.dumps(result, indent=2, default=str))
        return result

    def close(self) -> None:
        self.composite.close()


def score_all(plan: AblationPlan, out: Path, on_arm: Callable[[str, str], None] = lambda name, what: None) -> None:
    """Held-out scores for the untrained policy and every finished arm that lacks them."""
    pending = [arm for arm in plan.arms if arm_state(out / arm.name) == "finished"
               and not (out / arm.name / "heldout.json").is_file()]
    if (out / BASE / "heldout.json").is_file() and not pending:
        return
    scorer = HeldOutScorer(plan, out)
    try:
        base_cfg = plan.train_config(None, out)
        on_arm(BASE, "scoring")
        scorer.score(out / BASE, base_cfg, base_cfg.model.name)
        for arm in pending:
            on_arm(arm.name, "scoring")
            scorer.score(out / arm.name, plan.train_config(arm, out), str(out / arm.name / "final"))
    finally:
        scorer.close()


def run_ablation(plan: AblationPlan, out: Path, on_arm: Callable[[str, str], None] = lambda name, what: None) -> None:
    """Every arm in turn (trained, or skipped / resumed), then the held-out scores of all of them."""
    for arm in plan.arms:
        on_arm(arm.name, arm_state(out / arm.name))
        train_arm(plan, arm, out)
    score_all(plan, out, on_arm)


def launch_lines(plan: AblationPlan, out: Path, accelerate_config: str | None = None) -> list[str]:
    """The shell lines that run the plan on a cluster: one `accelerate launch` per arm (each resumable the same
    way: finished arms are skipped), then the held-out scoring and the report on one process."""
    acc = accelerate_config
    if acc is None:
        cfg = plan.train_config(None, out)
        if cfg.accelerate_config and plan.config:
            acc = str(Path(plan.config).parent / cfg.accelerate_config)
    launch = f"accelerate launch --config_file {shlex.quote(acc)}" if acc else "accelerate launch"
    lines = [f"# medix ablate: {len(plan.arms)} arms ({', '.join(plan.presets)} × seeds "
             f"{', '.join(map(str, plan.seeds))}); each line can be its own job, in any order"]
    lines += [f"{launch} -m medix ablate arm {shlex.quote(str(out))} {arm.name}" for arm in plan.arms]
    lines += [f"medix ablate score {shlex.quote(str(out))}   # after every arm: held-out answers, one judge",
              f"medix ablate report {shlex.quote(str(out))}"]
    return lines


def find_arm(plan: AblationPlan, name: str) -> Arm:
    for arm in plan.arms:
        if arm.name == name:
            return arm
    import difflib

    close = difflib.get_close_matches(name, [a.name for a in plan.arms], n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise MedixError(f"no arm {name!r} in this ablation: {hint}arms: {', '.join(a.name for a in plan.arms)}")
