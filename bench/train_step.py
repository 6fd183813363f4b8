"""Where a training step's time goes: rollout, reward, update, and everything else.

    python bench/train_step.py                 # 6 steps of the `medix demo` setup on CPU, first one skipped
    python bench/train_step.py --steps 10 --markdown
    python bench/train_step.py --smoke         # 1 step, a group of 2, 8-token answers: every row (CI)

The policy is the embedded SmolLM2-135M-Instruct, the judge `medix demo`'s (the CPU judge in-process where its
parts are installed, else SmolLM2; `--judge` picks one), the embedder all-MiniLM-L6-v2 — the `medix demo`
configuration with dynamic sampling off (one generation round per
step). Timers wrap TRL's own methods:

    rollout  GRPOTrainer._generate (sampling the group of answers)
    reward   GRPOTrainer._calculate_rewards (all four reward components, judge and embedder included)
    update   the loss forward/backward (training_step minus input preparation) and the optimizer step
    rest     step wall time minus the above: tokenisation, old/ref log-prob passes, advantages,
             dynamic-sampling bookkeeping, logging, callbacks

Target: rest <= 10% of the step. Speed is never asserted in tests; the table goes to docs/performance.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections import defaultdict

from transformers import TrainerCallback

from hardware import show as show_hardware  # bench/hardware.py (this script's folder is first on sys.path)

from medix.models import runtime_dtype
from medix.train.demo import demo_config
from medix.train.trainer import build_trainer

log = logging.getLogger("bench.train_step")
# --smoke: the same flow at toy sizes; its one step is measured warm-up and all (the figures mean nothing anyway).
SMOKE = {"steps": 1, "max_tokens": 8, "group": 2}


class Timers:
    def __init__(self):
        self.current: dict[str, float] = defaultdict(float)
        self.steps: list[dict[str, float]] = []

    def wrap(self, obj, name: str, bucket: str, sign: float = 1.0):
        original = getattr(obj, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.current[bucket] += sign * (time.perf_counter() - start)

        setattr(obj, name, timed)


class StepClock(TrainerCallback):
    """Wall time per optimizer step and the optimizer step itself."""

    def __init__(self, timers: Timers):
        self.timers = timers

    def on_step_begin(self, args, state, control, **kwargs):
        self.timers.current = defaultdict(float)
        self.begin = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.opt_begin = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.timers.current["update"] += time.perf_counter() - self.opt_begin

    def on_step_end(self, args, state, control, **kwargs):
        step = dict(self.timers.current)
        step["total"] = time.perf_counter() - self.begin
        self.timers.steps.append(step)


def measure(steps: int, max_tokens: int, group: int | None = None,
            judge: str | None = None) -> tuple[list[dict[str, float]], str]:
    """(per-step timings of `steps` demo steps, the judge's name); `group` replaces the demo's group size (and
    batch) when given, `judge` the demo's judge."""
    with tempfile.TemporaryDirectory(prefix="medix-bench-train-") as out:  # the final save lands here, then goes
        cfg = demo_config(steps, 2, out, max_tokens, judge_model=judge)
        cfg.algorithm.dynamic_sampling.enabled = False
        cfg.trainer.save_steps = 10_000
        cfg.data.eval = None
        if group:
            cfg.rollout.num_generations = cfg.trainer.per_device_train_batch_size = group
        judge_cfg = cfg.reward.judge
        name = f"{judge_cfg.model} ({judge_cfg.backend}, {runtime_dtype(judge_cfg.device, judge_cfg.dtype)})"
        return timed_steps(build_trainer(cfg)), name


def timed_steps(run) -> list[dict[str, float]]:
    trainer, timers = run.trainer, Timers()
    timers.wrap(trainer, "_generate", "rollout")
    timers.wrap(trainer, "_calculate_rewards", "reward")
    # update = training_step − _prepare_inputs (which holds rollout, reward and log-prob passes)
    timers.wrap(trainer, "training_step", "update")
    timers.wrap(trainer, "_prepare_inputs", "update", sign=-1.0)
    trainer.add_callback(StepClock(timers))
    try:
        trainer.train()
    finally:
        trainer.reward_funcs[0].composite.close()
    return timers.steps


def table(steps: list[dict[str, float]], markdown: bool) -> str:
    measured = steps[1:] if len(steps) > 1 else steps  # the first step pays for warm-up
    mean = {k: sum(s.get(k, 0.0) for s in measured) / len(measured) for k in ("rollout", "reward", "update", "total")}
    mean["rest"] = mean["total"] - mean["rollout"] - mean["reward"] - mean["update"]
    rows = [(k, mean[k], 100 * mean[k] / mean["total"]) for k in ("rollout", "reward", "update", "rest", "total")]
    lines = ["| part | seconds per step | share |", "|---|---:|---:|"] if markdown else \
        [f"{'part':<10}{'s/step':>10}{'share':>9}"]
    for name, seconds, share in rows:
        lines.append(f"| {name} | {seconds:.2f} | {share:.1f}% |" if markdown else
                     f"{name:<10}{seconds:>10.2f}{share:>8.1f}%")
    verdict = "met" if mean["rest"] <= 0.10 * mean["total"] else "MISSED"
    skipped = f"first of {len(steps)} skipped" if len(steps) > 1 else "the only step, warm-up included"
    lines.append(f"\nsteps measured: {len(measured)} ({skipped}); "
                 f"target rest <= 10% of the step: {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=64, help="answer length cap (as in medix demo)")
    parser.add_argument("--group", type=int, default=None, help="group size and batch (default: the demo's 4)")
    parser.add_argument("--judge", default=None, help="the reward's judge (default: medix demo's)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--smoke", action="store_true", help=f"toy sizes {SMOKE} (seconds), every row; the CI "
                        "check that this script still runs (tests/test_bench.py)")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.smoke:
        print("SMOKE RUN (--smoke): toy sizes, the figures below are not measurements.\n")
    steps, judge = measure(args.steps, args.max_tokens, args.group, args.judge)
    show_hardware(args.markdown)
    print(f"\njudge: {judge}\n")
    print(table(steps, args.markdown))


if __name__ == "__main__":
    main()
