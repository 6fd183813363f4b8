"""Judge request/verdict records shared by the backends."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JudgeRequest:
    candidate: str  # the model's final answer (reasoning already stripped)
    reference: str  # the reference answer (modality tag already stripped)
    question: str = ""  # optional context for the judge


@dataclass
class Verdict:
    score: float | None  # 1.0 YES, 0.0 NO, None when the judge failed
    error: str | None = None  # why the judge failed (after all retries); None on success
    raw: str | None = None  # the judge's text, or "p_yes=…" for the logit backend
    cached: bool = False
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.score is not None
