"""LLM-judge accuracy: the judge's YES/NO on (candidate answer, reference answer).

Samples the guard decided (`Batch.guards`: an exact match is 1, a trivial or verdict-word answer 0) take the
guard's value without a judge call. The rest go to the judge in ONE hop onto its event loop: the scorer
returns a Future at once, so the judge's waits overlap the embedding pass. A failed verdict has no value
(never a silent 0); its error is kept (`judge_error`) and `reward.on_judge_error` decides the overall.
"""

from __future__ import annotations

from concurrent.futures import Future

from medix.config import RewardConfig
from medix.judge import Judge, JudgeRequest
from medix.rewards.common import Batch, Column, Scorer


class LLMJudgeScorer(Scorer):
    def __init__(self, config: RewardConfig, judge: Judge | None = None):
        super().__init__(config)
        self._judge = judge

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            self._judge = Judge(self.config.judge)
        return self._judge

    def __call__(self, batch: Batch) -> Future:
        todo = batch.unguarded()
        requests = [JudgeRequest(candidate=batch.answers[i], reference=batch.references[i],
                                 question=batch.problems[i] or "") for i in todo]
        return self.judge.submit(self._column(batch, todo, requests))

    async def _column(self, batch: Batch, todo: list[int], requests: list[JudgeRequest]) -> Column:
        """Runs on the judge's loop, where `ajudge` judges directly (no second hand-off)."""
        values = [value for value, _ in batch.guards]
        errors: list[str | None] = [None] * len(values)
        for i, verdict in zip(todo, await self.judge.ajudge(requests)):
            values[i], errors[i] = verdict.score, verdict.error
        return Column(values, errors=errors, details={"judge_error": errors})

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close()
