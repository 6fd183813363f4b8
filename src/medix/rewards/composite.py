"""The composite reward of MediX-R1: the formula derived from THE table of components (`table.COMPONENTS`), and
`CompositeReward`, which scores a whole batch at once (every component of the table, then each sample's
overall), and its face for TRL: ONE reward function, `overall` (`trl_reward_functions`), plus a metric per
component:

    overall = (1 − Σ w_outside)·Σ_inside w·value·(configured inside total / live inside total) + Σ_outside w·value
    the paper's table: 0.9·(0.575·accuracy_llm + 0.375·accuracy_embed + 0.05·modality) + 0.1·format

    medix reward score --input examples/responses.jsonl --output scored.jsonl
    funcs, weights = trl_reward_functions(load_reward_config())   # [overall], [1.0]
    GRPOConfig(..., reward_weights=weights); GRPOTrainer(..., reward_funcs=funcs)

Every view reads `COMPONENTS`: the formula (`sample_weights`, `combine`), the result fields
(`RewardResult.values`), the TRL metrics (`component_metrics`: rewards/<name>/mean), the `medix reward score`
table (`score_file.table`), the EasyR1 / verl dicts (`engines`) and the reward-hacking monitor's format share.
The table itself is `rewards/table.py`: adding a component is its scorer (a `components.Scorer`) and a row
there; its weight field in `RewardWeights` is derived from the row.

A component whose value is None for a sample (not applicable: modality on an untagged reference or, unless
`reward.text_only_modality`, on a text-only sample) is dropped and the other inside-bracket weights are
scaled back to their configured total, so the best possible overall stays 1. A component that failed (the
judge, after its retries) follows `reward.on_judge_error`: renormalize drops it the same way, zero counts it
as 0 at its full weight (the official behaviour), skip_group leaves the sample without an overall.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from medix.rewards.components import Batch, Column
from medix.rewards.config import RewardConfig, RewardWeights
from medix.rewards.table import COMPONENTS, Component, names  # noqa: F401 (Component: the row type, for callers)


def effective_weights(w: RewardWeights, applies: dict[str, bool]) -> dict[str, float]:
    """The weight each component gets in `overall` for one sample: an inside-bracket component that does not
    apply gets 0 and the others are scaled back to the configured inside total; outside ones keep theirs."""
    inside = [c for c in COMPONENTS.values() if c.in_bracket]
    outside = [c for c in COMPONENTS.values() if not c.in_bracket]
    content = {c.name: getattr(w, c.weight) if applies[c.name] else 0.0 for c in inside}
    live = sum(content.values())
    configured = sum(getattr(w, c.weight) for c in inside)
    scale = (1 - sum(getattr(w, c.weight) for c in outside)) * configured / live if live > 0 else 0.0
    return {**{k: v * scale for k, v in content.items()}, **{c.name: getattr(w, c.weight) for c in outside}}


def sample_weights(cfg: RewardConfig, values: dict[str, float | None], failed: set[str]) -> dict[str, float] | None:
    """The weights of one sample's overall under `cfg.on_judge_error`; None = the sample has no overall.

    values: each component's value (None: not applicable or failed); failed: the components that failed."""
    policy = cfg.on_judge_error
    if policy == "skip_group" and any(getattr(cfg.weights, c.weight) > 0
                                      for c in COMPONENTS.values() if c.name in failed):
        return None
    applies = {name: value is not None or (name in failed and policy == "zero") for name, value in values.items()}
    weights = effective_weights(cfg.weights, applies)
    if sum(weights[c.name] for c in COMPONENTS.values() if c.in_bracket) <= 0:
        return None
    return weights


def combine(weights: dict[str, float] | None, values: dict[str, float | None]) -> float | None:
    """overall = Σ weight·value; a component without a value (None) counts 0 — its weight is 0 unless it
    failed under on_judge_error="zero"."""
    if weights is None:
        return None
    return sum(weights[k] * (values[k] or 0.0) for k in weights)


@dataclass
class RewardResult:
    """One sample's reward. The table's components are attributes too: `r.format`, `r.accuracy_llm`, and so
    are their details: `r.judge_error`, `r.similarity`."""

    overall: float | None  # None only when the judge failed and on_judge_error="skip_group"
    values: dict[str, float | None]  # each component by table name; None = not applicable, or failed
    details: dict[str, Any]  # per-component extras: judge_error (None on success), similarity (the cosine)
    guard: str | None  # why the accuracies were decided without models ("exact_match", "empty", ...)
    answer: str | None  # the parsed final answer
    # The weight of each component in `overall` for this sample (`sample_weights`); None when overall
    # is None.
    weights: dict[str, float] | None = field(default=None, repr=False)

    def __getattr__(self, name: str):
        for part in ("values", "details"):  # read through __dict__: no recursion while unpickling
            fields = self.__dict__.get(part) or {}
            if name in fields:
                return fields[name]
        raise AttributeError(f"RewardResult has no field or component {name!r}")

    def to_dict(self) -> dict:
        return {"overall": self.overall, **self.values, **self.details, "guard": self.guard, "answer": self.answer}


class CompositeReward:
    """Every component of the table for a batch; judge requests overlap with the embedding pass."""

    def __init__(self, config: RewardConfig | None = None, judge=None):
        self.config = config or RewardConfig()
        self.scorers = {c.name: c.build(self.config, judge) for c in COMPONENTS.values()}

    @property
    def judge(self):
        return self.scorers["accuracy_llm"].judge

    @property
    def judge_identity(self) -> dict:
        return self.judge.identity

    def score(self, responses: list[str], solutions: list[str], problems: list[str] | None = None,
              has_image: list[bool | None] | None = None) -> list[RewardResult]:
        return self.score_batch(Batch.of(responses, solutions, problems, has_image, self.config))

    def score_batch(self, batch: Batch) -> list[RewardResult]:
        pending = {name: scorer(batch) for name, scorer in self.scorers.items()}  # table order: the judge first
        columns = {name: p.result() if isinstance(p, Future) else p for name, p in pending.items()}
        return [self._result(batch, columns, i) for i in range(len(batch.parsed))]

    def _result(self, batch: Batch, columns: dict[str, Column], i: int) -> RewardResult:
        cfg = self.config
        values = {name: col.values[i] for name, col in columns.items()}
        failed = {name for name, col in columns.items() if col.errors is not None and values[name] is None}
        if batch.has_image[i] is False and not cfg.text_only_modality:
            values.update({c.name: None for c in COMPONENTS.values() if not c.text_only})
        weights = sample_weights(cfg, values, failed)
        details = {key: column[i] for col in columns.values() for key, column in col.details.items()}
        return RewardResult(combine(weights, values), values, details, batch.guards[i][1],
                            batch.parsed[i].answer, weights)

    def close(self) -> None:
        for scorer in self.scorers.values():
            scorer.close()


# TRL's face. TRL trains on `overall` itself and logs it as `reward` and `rewards/overall/mean`. A sample without an
# overall (on_judge_error=skip_group and a failed verdict) returns None: TRL marks it unscorable and the medix
# trainer leaves its whole group out (`train/sampling.py`). Each table component is logged through TRL's
# `log_metric` as `rewards/<name>/mean` (the mean over the completions it applies to, as EasyR1 logs every key
# of its score dict), and judge failures as `judge_error_rate`, under every policy. The function is
# synchronous: the composite's one hand-off onto the judge's loop is where it waits, and TRL calls it on its
# own thread.

REWARD_WEIGHTS = [1.0]  # TRL's reward_weights for [overall]: the component weights are inside overall


class OverallReward:
    """TRL reward function: the composite overall of each completion (None: no overall, see skip_group)."""

    __name__ = "overall"

    def __init__(self, composite: CompositeReward):
        self.composite = composite
        self.last: list[RewardResult] = []  # this process's results of the batch scored last (trainer, monitor)

    def __call__(self, completions: list, solution: list[str], problem: list[str] | None = None, log_metric=None,
                 **columns) -> list[float | None]:
        batch = Batch.from_trl(completions, solution, problem, columns, self.composite.config)
        self.last = self.composite.score_batch(batch)
        if log_metric is not None:
            for name, value in component_metrics(self.last):
                log_metric(name, value)
        return [r.overall for r in self.last]


def component_metrics(results: list[RewardResult]) -> list[tuple[str, float]]:
    """(metric, value) per completion and component where it has a value, and per completion for
    judge_error_rate. One value per completion, so TRL's average of a metric (sum / count over every process)
    is the mean over the global batch, as for TRL's own per-function metrics."""
    out = [(f"rewards/{name}/mean", r.values[name]) for name in COMPONENTS for r in results
           if r.values.get(name) is not None]
    return out + [("judge_error_rate", float(r.judge_error is not None)) for r in results]


def trl_reward_functions(config: RewardConfig | None = None, judge=None) -> tuple[list, list[float]]:
    """([overall], [1.0]); `funcs[0].composite` is the CompositeReward (its judge can be reused, and must be
    closed)."""
    return [OverallReward(CompositeReward(config or RewardConfig(), judge=judge))], list(REWARD_WEIGHTS)
