"""What every reward component reads: one `Batch` (each response parsed once, the pre-model guard decided once
per sample), what it returns (`Column`), the `Scorer` base class, and the guards themselves.

    batch = Batch.of(["<X_RAY> <think>r</think> <answer>Pneumothorax</answer>"], ["<X_RAY> Pneumothorax"],
                     config=RewardConfig())
    batch.guards[0]   # (1.0, "exact_match"): the accuracy components need no model for this sample
"""

from __future__ import annotations

import re
import unicodedata
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from medix.config import RewardConfig
from medix.data.modality import split_solution
from medix.data.response import ParsedResponse, parse_response

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
