"""Read a verdict out of judge text: only the verdict the prompt's contract asks for, nothing else.

readout "yesno" (medix's prompts, the one-turn reward judge): the reply's LEADING word is YES or NO, ending
    there or at punctuation ("YES", "**No.**", "Answer: yes", "No, it names option C"); a reply that merely
    starts with the word ("No doubt: the candidate is correct") or never says it holds no verdict.
    The rubric of those prompts asks for JSON: `{"score": n}`, n a number in 0..5, nothing else.
readout "json_score" (the paper protocol): exactly the official parser (`official_score`): the text after
    the last `</think>` (else `</thinking>`), from its first `{` to its last `}`, as JSON, its `score`.
    Binary: a round counts 1 when that value equals 1 (`1`, `1.0`, `true`) and 0 otherwise (`"1"`, `2`,
    `null`), as the official `scores.count(1)` does; rubric: any number (bools as 0/1), unbounded, as the
    official mean. No JSON object with a `score` is no verdict.
medix's own readouts drop a thinking judge's reasoning first (`strip_thinking`: tolerant tags; a think
block that never closes holds no verdict). A reply without a verdict is retried by the backend.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from medix.judge.types import Kind

Readout = Literal["yesno", "json_score"]
VERDICT_WORDS = {"yes": 1.0, "no": 0.0}  # the binary verdict words (any case) and their scores
_THINK_OPEN = re.compile(r"<\s*(think|thinking)\s*>", re.IGNORECASE)
THINK_CLOSE = re.compile(r"<\s*/\s*(think|thinking)\s*>", re.IGNORECASE)
# A whole think block, tolerant tags, closed by its own tag or running to the end of the text.
THINK_BLOCK = re.compile(r"<\s*(think|thinking)\s*>.*?(<\s*/\s*\1\s*>|\Z)", re.DOTALL | re.IGNORECASE)
# an optional label, then YES / NO as a whole word that ends the reply or is followed by punctuation
_LEADING = re.compile(r"^[\s*_#>`\"'(\[]*(?:(?:final\s+)?(?:answer|verdict|judg(?:e)?ment|decision)\s*[:=-]\s*"
                      r"[\s*_\"'`]*)?(" + "|".join(VERDICT_WORDS) + r")(?=$|[\s*_\"'`]*"
                      r"(?:[.,;:!?)\]\u2014\u2013-]|\n|$))", re.IGNORECASE)
_MISSING = object()


def spellings(word: str) -> tuple[str, ...]:
    """The token spellings of a verdict word a tokenizer may have: three cases, with and without a leading space."""
    cases = (word.upper(), word.capitalize(), word.lower())
    return cases + tuple(" " + c for c in cases)


def in_thinking(text: str) -> bool:
    """`text` ends inside a think block: one opened (`<think>` / `<thinking>`, tolerant) after the last close."""
    opens, closes = list(_THINK_OPEN.finditer(text)), list(THINK_CLOSE.finditer(text))
    return bool(opens) and (not closes or opens[-1].start() > closes[-1].start())


def strip_thinking(text: str | None) -> str | None:
    """The text after the last `</think>` / `</thinking>`; None when a think block opens and never closes
    (the reply was cut, or the judge never got to its verdict)."""
    if text is None:
        return None
    closes = list(THINK_CLOSE.finditer(text))
    if closes:
        return text[closes[-1].end():]
    return None if _THINK_OPEN.search(text) else text


def json_score(text: str) -> object | None:
    """The `score` value of the JSON object in `text` (bare, fenced or with prose around), or None."""
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end <= start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    return data.get("score") if isinstance(data, dict) else None


def after_last_think(text: str) -> str:
    """The official rule for a reply that may think first: the text after the last `</think>` (else the last
    `</thinking>`), stripped; the whole text, stripped, when neither is there. The tags are matched exactly and
    case-sensitively, as the official code does (`</Think>` or `</ think>` is no tag there). The evaluation's
    candidate (`eval.protocol.paper_candidate`) and the official verdict parser both read a reply this way."""
    for tag in ("</think>", "</thinking>"):  # the first tag that occurs wins
        if tag in text:
            return text.rpartition(tag)[2].strip()
    return text.strip()


def official_score(text: str | None) -> object:
    """The official parser's value, or `_MISSING` where it raises (no object, bad JSON, no `score`)."""
    if text is None:
        return _MISSING
    text = after_last_think(text)
    start, end = text.find("{"), text.rfind("}") + 1
    try:
        data = json.loads(text[start:end])
    except (json.JSONDecodeError, ValueError):
        return _MISSING
    return data["score"] if isinstance(data, dict) and "score" in data else _MISSING


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float))  # bool is an int, as in the official sum()


def parse_paper(kind: Kind, text: str | None) -> float | None:
    value = official_score(text)
    if value is _MISSING:
        return None
    if kind == "rubric":
        return float(value) if _is_number(value) else None
    return 1.0 if _is_number(value) and value == 1 else 0.0


def parse_verdict(text: str | None) -> float | None:
    """1.0 for a leading YES, 0.0 for a leading NO, None otherwise (see the module docstring)."""
    text = strip_thinking(text)
    found = _LEADING.match(text) if text else None
    if not found:
        return None
    return VERDICT_WORDS[found.group(1).lower()]


def parse_rubric(text: str | None) -> float | None:
    """0..5 from `{"score": n}` (bare, fenced or with prose around); None otherwise or out of range."""
    text = strip_thinking(text)
    value = json_score(text) if text else None
    if not _is_number(value) or isinstance(value, bool):
        return None
    return float(value) if 0 <= value <= 5 else None


def parse_reply(kind: Kind, text: str | None, readout: Readout = "yesno") -> float | None:
    if readout == "json_score":
        return parse_paper(kind, text)
    return parse_rubric(text) if kind == "rubric" else parse_verdict(text)


def combine_rounds(kind: Kind, rounds: list[float]) -> float:
    """Binary: majority (ties → NO, since an unsure judge must not award the point); rubric: mean."""
    if kind == "rubric":
        return sum(rounds) / len(rounds)
    return 1.0 if sum(rounds) * 2 > len(rounds) else 0.0
