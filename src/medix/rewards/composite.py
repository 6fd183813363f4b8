"""The composite reward of MediX-R1, computed for a whole batch at once.

    overall = (1 − w_f)·(w_j·accuracy_llm + w_e·accuracy_embed + w_m·modality) + w_f·format

A component that does not apply (modality on a text-only sample; the judge, when it failed and
`on_judge_error="renormalize"`) is dropped and the remaining content weights are scaled back to their
configured total, so the best possible overall stays 1. Run from the shell:

    medix reward score --input examples/responses.jsonl --output scored.jsonl
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from medix.config import RewardConfig, RewardWeights
from medix.data.response import parse_response
from medix.rewards.common import reference_answer
from medix.rewards.embedding import EmbeddingReward
from medix.rewards.llm_judge import LLMJudgeReward
from medix.rewards.modality import ModalityReward


@dataclass
class RewardResult:
    overall: float | None  # None only when the judge failed and on_judge_error="null"
    format: float
    modality: float | None  # None = not applicable (text-only sample or untagged reference)
    accuracy_llm: float | None  # None = the judge failed (see judge_error)
    accuracy_embed: float
    judge_error: str | None
    guard: str | None  # why the accuracies were decided without models ("exact_match", "empty", ...)
    similarity: float | None  # cosine behind accuracy_embed
    answer: str | None  # the parsed final answer

    def to_dict(self) -> dict:
        return asdict(self)


def combine(w: RewardWeights, fmt: float, modality: float | None, llm: float | None, embed: float) -> float | None:
    """Weighted sum; None components are dropped and the content weights renormalised to their total."""
    parts = [(w.judge, llm), (w.embed, embed), (w.modality, modality)]
    total = w.judge + w.embed + w.modality
    live = [(wt, v) for wt, v in parts if v is not None]
    live_total = sum(wt for wt, _ in live)
    if live_total <= 0:
        return None
    content = sum(wt * v for wt, v in live) * (total / live_total)
    return (1 - w.format) * content + w.format * fmt


class CompositeReward:
    """All four components for a batch; judge requests overlap with the embedding pass."""

    def __init__(self, config: RewardConfig | None = None, judge=None):
        self.config = config or RewardConfig()
        self.embedding = EmbeddingReward(self.config)
        self.llm = LLMJudgeReward(self.config, judge=judge)
        self.modality = ModalityReward(self.config.think_tags, self.config.text_only_modality)

    @property
    def judge_identity(self) -> dict:
        return self.llm.judge.identity

    def score(
        self,
        responses: list[str],
        solutions: list[str],
        problems: list[str] | None = None,
        has_image: list[bool | None] | None = None,
    ) -> list[RewardResult]:
        cfg = self.config
        parsed = [parse_response(r, cfg.think_tags) for r in responses]
        answers = [p.answer for p in parsed]
        references = [reference_answer(s) for s in solutions]
        has_image = has_image or [None] * len(responses)
        # Start the judge (its own thread and loop) first, so HTTP waits overlap the embedding pass.
        judging = self.llm.judge.submit(self.llm.score_answers(answers, references, problems))
        embeds = self.embedding.score_answers(answers, references)
        verdicts = judging.result()
        results = []
        for i, p in enumerate(parsed):
            verdict, (embed, sim) = verdicts[i], embeds[i]
            modality = self.modality.score_one(responses[i], solutions[i], has_image[i])
            fmt = float(p.well_formed)
            if verdict.ok or cfg.on_judge_error == "renormalize":
                overall = combine(cfg.weights, fmt, modality, verdict.score, embed)
            else:
                overall = None
            guard_reason = verdict.raw[6:] if verdict.raw and verdict.raw.startswith("guard:") else None
            results.append(RewardResult(overall, fmt, modality, verdict.score, embed, verdict.error,
                                        guard_reason, sim, p.answer))
        return results

    def close(self) -> None:
        if self.llm._judge is not None:
            self.llm._judge.close()
