"""Reward-hacking monitor: per step, signals that the policy is learning the reward instead of the task.

Read from the per-completion `RewardResult`s of the `overall` reward function (`rewards/composite.OverallReward`),
over every completion generated for the step (all dynamic-sampling rounds, all processes), and logged as
`monitor/*` beside TRL's metrics:

    monitor/judge_accepts_embed_rejects   judge says yes (accuracy_llm >= 0.5, no guard) and cosine < embed_threshold
    monitor/embed_accepts_judge_rejects   the reverse
    monitor/answer_tokens_mean, _p95      policy tokens in the <answer> block (completions that have one)
    monitor/answer_length_ratio           mean answer tokens / the mean of the first `baseline_steps` steps
    monitor/guard/<reason>                share of completions a guard decided (exact_match, verdict_word, ...)
    monitor/format_reward_share           Σ outside-bracket weight · value (format) / Σ overall: paid for tags alone

`medix train` logs a warning (once per condition, with the step and the figures) when the first share
passes `monitor.max_judge_embed_disagreement` after `monitor.warmup_steps`, or when the length ratio passes
`monitor.max_length_ratio` once the baseline is complete. What each signal means: docs/training.md.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np

from medix.rewards.config import RewardConfig
from medix.rewards import composite as reward
from medix.rewards.components import GUARD_REASONS
from medix.rewards.composite import RewardResult
from medix.train.config import MonitorConfig

log = logging.getLogger(__name__)



def outside_part(r: RewardResult) -> float:
    """The part of a sample's overall paid by the outside-bracket components (the format reward)."""
    return sum(r.weights[c.name] * (r.values[c.name] or 0.0) for c in reward.COMPONENTS.values() if not c.in_bracket)


def policy_tokens(processing) -> Callable[[str], int]:
    """answer text → its number of policy tokens (`processing`: the policy's tokenizer, or a processor holding
    one)."""
    tokenizer = getattr(processing, "tokenizer", processing)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def completion_facts(results: list[RewardResult], config: RewardConfig, count_tokens) -> list[dict]:
    """What the monitor needs of each completion, small enough to gather across processes.

    count_tokens: answer text → number of policy tokens."""
    facts = []
    for r in results:
        judged = r.guard is None and r.accuracy_llm is not None  # a real verdict, not a guard or a failure
        embedded = r.similarity is not None
        facts.append({
            "judge_yes": judged and r.accuracy_llm >= 0.5, "judge_no": judged and r.accuracy_llm < 0.5,
            "embed_yes": embedded and r.similarity >= config.embed_threshold,
            "embed_no": embedded and r.similarity < config.embed_threshold,
            "guard": r.guard, "answer_tokens": None if r.answer is None else count_tokens(r.answer),
            "overall": r.overall, "format_part": None if r.weights is None else outside_part(r),
        })
    return facts


def step_signals(facts: list[dict]) -> dict[str, float]:
    """The monitor/* metrics of one step's completions (NaN where a signal has nothing to measure)."""
    n = max(1, len(facts))
    out = {
        "judge_accepts_embed_rejects": sum(f["judge_yes"] and f["embed_no"] for f in facts) / n,
        "embed_accepts_judge_rejects": sum(f["embed_yes"] and f["judge_no"] for f in facts) / n,
    }
    tokens = [f["answer_tokens"] for f in facts if f["answer_tokens"] is not None]
    out["answer_tokens_mean"] = float(np.mean(tokens)) if tokens else math.nan
    out["answer_tokens_p95"] = float(np.percentile(tokens, 95)) if tokens else math.nan
    for reason in GUARD_REASONS:  # one rate per reason the pre-model guard gives
        out[f"guard/{reason}"] = sum(f["guard"] == reason for f in facts) / n
    scored = [f for f in facts if f["overall"] is not None]
    total = sum(f["overall"] for f in scored)
    out["format_reward_share"] = sum(f["format_part"] for f in scored) / total if total > 0 else math.nan
    return out


def conditions(step: int, signals: dict[str, float], baselined: int, c: MonitorConfig) -> list[str]:
    """The warning conditions one step's signals meet: the judge accepting what the embedding rejects past
    `max_judge_embed_disagreement` after `warmup_steps`; answers longer than `max_length_ratio` times the
    baseline once `baselined` (steps in it) reaches `baseline_steps`."""
    out = []
    share, ratio = signals.get("judge_accepts_embed_rejects"), signals.get("answer_length_ratio")
    if step > c.warmup_steps and share is not None and share > c.max_judge_embed_disagreement:
        out.append("judge_embed_disagreement")
    if baselined >= c.baseline_steps and ratio is not None and ratio > c.max_length_ratio:
        out.append("answer_length")
    return out


def replay(rows: list[dict], config: MonitorConfig) -> dict[str, int]:
    """{condition: the step it first fired} from a run's logged monitor/* metrics (one dict per step, as in
    metrics.jsonl): the monitor's own rule, for a run folder read after the fact (`medix ablate report`)."""
    first: dict[str, int] = {}
    baselined = 0
    for row in sorted(rows, key=lambda r: r["step"]):
        signals = {k.removeprefix("monitor/"): v for k, v in row.items() if k.startswith("monitor/")}
        signals = {k: None if v is None or (isinstance(v, float) and math.isnan(v)) else v for k, v in signals.items()}
        if signals.get("answer_tokens_mean") is not None:
            baselined = min(baselined + 1, config.baseline_steps)
        for condition in conditions(row["step"], signals, baselined, config):
            first.setdefault(condition, row["step"])
    return first


class RewardMonitor:
    """Collects a step's completion facts, turns them into monitor/* metrics and warns once per condition.

    source: the `overall` reward function (`OverallReward`); its `last` results are the round just scored.
    The trainer calls `add(gathered facts)` after each scoring round and `end_step` once the step's batch is
    complete; every process keeps the same baseline, the main process warns."""

    def __init__(self, config: MonitorConfig, reward: RewardConfig, source, count_tokens):
        self.config, self.reward, self.source, self.count_tokens = config, reward, source, count_tokens
        self.baseline: list[float] = []  # mean answer tokens of the first baseline_steps steps
        self.warned: dict[str, int] = {}  # condition → step it was first reported
        self.warnings: list[str] = []
        self._facts: list[dict] = []

    def facts(self) -> list[dict]:
        """This process's facts of the round just scored."""
        return completion_facts(self.source.last, self.reward, self.count_tokens)

    def add(self, facts: list[dict]) -> None:
        self._facts.extend(facts)

    def end_step(self, step: int, warn: bool = True) -> dict[str, float]:
        """monitor/* metrics of the completions added since the last call; warns (if `warn`) past a threshold."""
        signals = step_signals(self._facts)
        self._facts = []
        mean = signals["answer_tokens_mean"]
        if len(self.baseline) < self.config.baseline_steps and not math.isnan(mean):
            self.baseline.append(mean)
        base = float(np.mean(self.baseline)) if self.baseline else math.nan
        signals["answer_length_ratio"] = mean / base if base > 0 else math.nan
        if warn:
            self._check(step, signals, base)
        return {f"monitor/{k}": v for k, v in signals.items()}

    def _check(self, step: int, s: dict[str, float], base: float) -> None:
        c = self.config
        fired = conditions(step, s, len(self.baseline), c)
        if "judge_embed_disagreement" in fired:
            self._warn("judge_embed_disagreement", step, (
                f"step {step}: the judge accepts {s['judge_accepts_embed_rejects']:.0%} of the completions whose "
                f"answer the embedding rejects (cosine < {self.reward.embed_threshold}; "
                f"monitor.max_judge_embed_disagreement = {c.max_judge_embed_disagreement:.0%}). The policy may be "
                "writing answers that please the judge (verdict bait): read completions.jsonl, see docs/training.md "
                "\"Reward-hacking monitor\""))
        if "answer_length" in fired:
            self._warn("answer_length", step, (
                f"step {step}: mean answer length {s['answer_tokens_mean']:.1f} tokens (p95 "
                f"{s['answer_tokens_p95']:.0f}) is {s['answer_length_ratio']:.1f}x the first {c.baseline_steps} "
                f"steps' {base:.1f} (monitor.max_length_ratio = {c.max_length_ratio}). The policy may be padding its "
                "answers: see docs/training.md \"Reward-hacking monitor\""))

    def _warn(self, condition: str, step: int, message: str) -> None:
        if condition in self.warned:
            return
        self.warned[condition] = step
        self.warnings.append(message)
        log.warning("reward-hacking monitor: %s", message)

    def state_dict(self) -> dict:
        return {"baseline": self.baseline, "warned": self.warned, "warnings": self.warnings}

    def load_state_dict(self, state: dict) -> None:
        self.baseline, self.warned, self.warnings = state["baseline"], state["warned"], state["warnings"]
