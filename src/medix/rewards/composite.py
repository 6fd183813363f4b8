"""The composite reward of MediX-R1, computed for a whole batch at once: every component of the table
(`components.COMPONENTS`) scores the batch, then each sample's overall follows the formula derived from it.
Run from the shell:

    medix reward score --input examples/responses.jsonl --output scored.jsonl
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from medix.config import RewardConfig
from medix.rewards import components
from medix.rewards.common import Batch, Column


@dataclass
class RewardResult:
    """One sample's reward. The table's components are attributes too: `r.format`, `r.accuracy_llm`, and so
    are their details: `r.judge_error`, `r.similarity`."""

    overall: float | None  # None only when the judge failed and on_judge_error="skip_group"
    values: dict[str, float | None]  # each component by table name; None = not applicable, or failed
    details: dict[str, Any]  # per-component extras: judge_error (None on success), similarity (the cosine)
    guard: str | None  # why the accuracies were decided without models ("exact_match", "empty", ...)
    answer: str | None  # the parsed final answer
    # The weight of each component in `overall` for this sample (`components.sample_weights`); None when overall
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
        self.scorers = {c.name: c.scorer(self.config, judge) for c in components.COMPONENTS}

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
            values.update({c.name: None for c in components.COMPONENTS if not c.text_only})
        weights = components.sample_weights(cfg, values, failed)
        details = {key: column[i] for col in columns.values() for key, column in col.details.items()}
        return RewardResult(components.combine(weights, values), values, details, batch.guards[i][1],
                            batch.parsed[i].answer, weights)

    def close(self) -> None:
        for scorer in self.scorers.values():
            scorer.close()
