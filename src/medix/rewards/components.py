"""The reward components and what they share: one `Batch` (each response parsed once, the pre-model guard
decided once per sample), what a component returns (`Column`), the `Scorer` contract, the guards, and the four
scorers of the MediX-R1 reward (the table that names them is `table.COMPONENTS`):

    batch = Batch.of(["<X_RAY> <think>r</think> <answer>Pneumothorax</answer>"], ["<X_RAY> Pneumothorax"],
                     config=RewardConfig())
    batch.guards[0]   # (1.0, "exact_match"): the accuracy components need no model for this sample
    FormatScorer(RewardConfig())(batch).values   # [1.0]

- `LLMJudgeScorer` (accuracy_llm): the judge's YES/NO on (candidate answer, reference answer).
- `EmbeddingScorer` (accuracy_embed): 1 iff the cosine of the predicted and the reference answer >= threshold.
- `ModalityScorer` (modality): 1 iff the text before the think block is the reference's tag.
- `FormatScorer` (format): 1 iff the response is one think block then one answer block.

A new component is a `Scorer` here and a row in `rewards/table.py` (its weight field is derived from the row).
"""

from __future__ import annotations

import re
import unicodedata
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medix.data.response import ParsedResponse, parse_response, split_solution
from medix.judge import Judge, JudgeRequest
from medix.models import load_embedder
from medix.rewards.config import RewardConfig

# Answers that are only a verdict ("YES", "correct", "score: 1", "1") try to please a judge instead of
# answering; they earn 0 unless the reference itself is that word.
_VERDICT_ONLY = re.compile(
    r"^(yes|no|y|n|correct|incorrect|true|false|right|wrong|match|ok|okay|"
    r"(score|grade|verdict|answer|result)?\s*[:=]?\s*(1|0|1\.0|0\.0|100%?|\d+\s*/\s*\d+|yes|no|correct|true))$"
)

# Sentences that only assert correctness ("Yes, this is correct.", "My answer matches the reference."): every
# word is one of these and at least one is a verdict word. A word outside the list (a finding, an option
# letter, a number) makes it an answer the judge must read.
_VERDICT_WORDS = {"yes", "correct", "true", "right", "match", "matches", "matched", "accurate", "valid", "ok",
                  "okay", "no", "incorrect", "false", "wrong", "agrees", "identical", "same", "equivalent"}
_ASSERTION_WORDS = _VERDICT_WORDS | {
    "this", "that", "it", "is", "was", "be", "are", "am", "i", "the", "a", "an", "my", "your", "our", "answer",
    "response", "reply", "candidate", "prediction", "predicted", "output", "reference", "ground", "truth", "gold",
    "standard", "expected", "given", "provided", "final", "of", "to", "with", "as", "and", "fully", "totally",
    "completely", "definitely", "absolutely", "indeed", "exactly", "perfectly", "perfect", "entirely", "100",
    "percent", "score", "grade", "verdict", "result", "one", "so", "very", "quite", "clearly", "surely"}


def asserts_only(answer: str, reference: str) -> bool:
    """True when `answer` is a sentence of assertion words only (see above), unless it holds every word of
    the reference (a yes/no question answered "Yes, that is right"; "right" as a side: "The right one")."""
    words = re.findall(r"[^\W_]+", normalize(answer))
    if len(words) < 2 or not set(words) <= _ASSERTION_WORDS or not set(words) & _VERDICT_WORDS:
        return False
    return not set(re.findall(r"[^\W_]+", normalize(reference))) <= set(words)


def completion_text(completion: Any) -> str:
    """TRL passes strings (standard format) or message lists (conversational format)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):  # multimodal content parts
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content)
    return "" if completion is None else str(completion)


def normalize(text: str) -> str:
    """Case, unicode width forms, surrounding whitespace, inner whitespace runs and trailing periods
    don't matter; zero-width characters are dropped."""
    text = unicodedata.normalize("NFKC", text).replace("\u200b", "").replace("\ufeff", "")
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip().casefold()


# Every reason `guard` can give (the monitor reports a rate for each): decided without a model.
GUARD_REASONS = ("exact_match", "verdict_word", "too_long", "no_answer_block", "empty", "too_short")


def guard(answer: str | None, reference: str, max_chars: int) -> tuple[float | None, str | None]:
    """Decide the accuracy components without any model, when possible.

    Returns (value, reason): (1.0, "exact_match"), (0.0, reason) for a trivial or hacking answer, or
    (None, None) when the models must decide.
    """
    if answer is None:
        return 0.0, "no_answer_block"
    if normalize(answer) and normalize(answer) == normalize(reference):
        return 1.0, "exact_match"
    stripped = answer.strip()
    if not stripped:
        return 0.0, "empty"
    if len(stripped) <= 1:
        return 0.0, "too_short"
    if len(stripped) > max_chars:
        return 0.0, "too_long"
    bare = re.sub(r"[^\w:=/%. ]+", "", normalize(stripped)).strip(" .")
    if _VERDICT_ONLY.match(bare) and bare != re.sub(r"[^\w:=/%. ]+", "", normalize(reference)).strip(" ."):
        return 0.0, "verdict_word"
    if asserts_only(stripped, reference):
        return 0.0, "verdict_word"
    return None, None


def image_present(value) -> bool:
    """An `images`/`image` value: a non-empty list, or one non-empty path/image."""
    if isinstance(value, (list, tuple)):
        return len(value) > 0
    return value is not None and value != ""


def row_has_image(row: dict) -> bool | None:
    """True/False from a row's `images`/`image` field; None when the row has neither."""
    for key in ("images", "image"):
        if key in row:
            return image_present(row[key])
    return None


def sample_has_image(kwargs: dict, index: int) -> bool | None:
    """True/False from an `images`/`image` column; None when the batch has no such column."""
    for key in ("images", "image"):
        if key in kwargs and kwargs[key] is not None:
            return image_present(kwargs[key][index])
    return None


@dataclass
class Batch:
    """One batch of completions as every scorer sees it."""

    parsed: list[ParsedResponse]  # each response parsed once
    solutions: list[str]  # "<TAG> answer"
    tags: list[str | None]  # the reference's modality tag (None: untagged)
    references: list[str]  # the reference answer, tag stripped
    problems: list[str]  # the question ("" when not given)
    has_image: list[bool | None]  # None: the input does not say
    # The pre-model guard, decided once per sample: (1.0, "exact_match"), (0.0, reason) for a trivial or
    # verdict-word answer, or (None, None) when the models (judge, embedder) must decide.
    guards: list[tuple[float | None, str | None]]

    @classmethod
    def of(cls, responses: list[str], solutions: list[str], problems: list[str] | None = None,
           has_image: list[bool | None] | None = None, config: RewardConfig | None = None) -> Batch:
        config = config or RewardConfig()
        parsed = [parse_response(r, config.think_tags) for r in responses]
        split = [split_solution(s)[:2] for s in solutions]  # (tag, answer)
        guards = [guard(p.answer, ref, config.max_answer_chars) for p, (_, ref) in zip(parsed, split)]
        return cls(parsed, list(solutions), [t for t, _ in split], [a for _, a in split],
                   list(problems or [""] * len(responses)),
                   list(has_image or [None] * len(responses)), guards)

    @classmethod
    def from_trl(cls, completions: list, solution: list[str], problem: list[str] | None, columns: dict,
                 config: RewardConfig | None = None) -> Batch:
        """From TRL's reward-function arguments: completions (strings or message lists) and the dataset columns
        (`images` / `image` say whether each sample has an image)."""
        responses = [completion_text(c) for c in completions]
        has_image = [sample_has_image(columns, i) for i in range(len(responses))]
        return cls.of(responses, list(solution), problem, has_image, config)

    @property
    def answers(self) -> list[str | None]:
        return [p.answer for p in self.parsed]

    def unguarded(self) -> list[int]:
        """The samples the models must decide."""
        return [i for i, (value, _) in enumerate(self.guards) if value is None]


@dataclass
class Column:
    """One component's values for a batch."""

    values: list[float | None]  # None: not applicable to the sample, or failed (see errors)
    errors: list[str | None] | None = None  # set by a component that can fail (the judge): why a value is missing
    details: dict[str, list[Any]] = field(default_factory=dict)  # extra per-sample result fields ("similarity")


class Scorer:
    """A reward component: `scorer(batch)` gives its Column, or a Future of it when it waits on I/O (the
    composite calls the scorers in table order, so a Future's waits overlap the scorers after it)."""

    def __init__(self, config: RewardConfig, judge=None):
        self.config = config

    def __call__(self, batch: Batch) -> Column | Future:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the scorer holds (the judge's loop and clients)."""


# The four components of MediX-R1. Samples the guard decided (`Batch.guards`: an exact match is 1, a trivial or
# verdict-word answer 0) take the guard's value in both accuracy components without any model.


class LLMJudgeScorer(Scorer):
    """accuracy_llm: the judge's YES/NO on (candidate answer, reference answer).

    The unguarded samples go to the judge in ONE hop onto its event loop: the scorer returns a Future at once,
    so the judge's waits overlap the embedding pass. A failed verdict has no value (never a silent 0); its
    error is kept (`judge_error`) and `reward.on_judge_error` decides the overall."""

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


class EmbeddingScorer(Scorer):
    """accuracy_embed: 1 iff cosine(predicted, reference) >= threshold (paper: 0.8 with MedEmbed-large-v0.1);
    `embed_continuous` gives max(0, cos). A whole batch is encoded in ONE call over its distinct texts (a GRPO
    group repeats its reference); samples the guard decided are not encoded."""

    def __init__(self, config: RewardConfig, judge=None):
        super().__init__(config)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            cfg = self.config.embedder
            self._model = load_embedder(cfg.model, cfg.device)
        return self._model

    def similarities(self, answers: list[str], references: list[str]) -> list[float]:
        """Cosine similarity per pair, from one encode call."""
        if not answers:
            return []
        texts = list(dict.fromkeys([*answers, *references]))
        index = {t: i for i, t in enumerate(texts)}
        vectors = self.model.encode(texts, batch_size=self.config.embedder.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        a = vectors[[index[t] for t in answers]]  # (n, dim), unit length
        b = vectors[[index[t] for t in references]]
        return np.einsum("nd,nd->n", a, b).astype(float).tolist()

    def value(self, similarity: float) -> float:
        if self.config.embed_continuous:
            return max(0.0, similarity)
        return float(similarity >= self.config.embed_threshold)

    def __call__(self, batch: Batch) -> Column:
        """accuracy_embed per sample, with the cosine behind it as the `similarity` detail (None: guard decided)."""
        values = [value for value, _ in batch.guards]
        similarity: list[float | None] = [None] * len(values)
        todo = batch.unguarded()
        sims = self.similarities([batch.answers[i] for i in todo], [batch.references[i] for i in todo])
        for i, sim in zip(todo, sims):
            values[i], similarity[i] = self.value(sim), sim
        return Column(values, details={"similarity": similarity})


class ModalityScorer(Scorer):
    """modality: 1 iff the text before the think block is exactly the reference's tag (case-insensitive,
    whitespace inside the brackets tolerated). None (not applicable) when the reference has no tag; on a sample
    without an image the composite switches it off unless `text_only_modality` is set (its table row says it
    does not apply to text-only samples), and renormalises the other weights."""

    def __call__(self, batch: Batch) -> Column:
        return Column([None if tag is None else float(p.modality == tag) for p, tag in zip(batch.parsed, batch.tags)])


class FormatScorer(Scorer):
    """format: 1 iff, from the first think tag on, the response is one think block, optional whitespace, one
    answer block, then only whitespace (the MediX-R1 rule). Text before the think block (the modality tag) is
    judged by the modality reward, not here."""

    def __call__(self, batch: Batch) -> Column:
        return Column([float(p.well_formed) for p in batch.parsed])
