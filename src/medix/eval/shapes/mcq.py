"""Multiple choice: lettered options from four row layouts, and how each protocol lays them out.

    shape: mcq_list       # MMLU: options in one list column, the answer an index
    shape: mcq_columns    # MedMCQA, MedQA: one column per option, the answer an index or a letter
    shape: mcq_letters    # USMLE self-assessment: {letter: text} with nulls, the answer a letter
    shape: mcq_choices    # PMC-VQA: options in a list (or {letter: text}), the answer the option's text

paper: the question, `Choices:` and one `A. text` line per option; the option's text is the reference.
medix: `Options:` plus an answer instruction; `B. text` is the reference (`LAYOUTS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from medix.eval.protocol import Protocol
from medix.eval.registry import TaskSpec
from medix.eval.rows import Index, Letter, LetterOptions, OptionalText, Options, Schema, Text
from medix.eval.shapes.base import LETTERS, Built, shape


@dataclass(frozen=True)
class Choices:
    """One protocol's layout of lettered options."""

    question: Callable[[str, str], str]  # (question, the listing "A. x\nB. y") -> the text asked
    reference: Callable[[str, dict[str, str], "str | None"], str]  # (letter, choices, the row's answer text)


def _paper_question(question: str, listed: str) -> str:
    return f"{question}\n\nChoices:\n{listed}".strip()


def _paper_reference(letter: str, choices: dict[str, str], reference_text: str | None) -> str:
    return (choices[letter] if reference_text is None else reference_text).strip()


def _medix_question(question: str, listed: str) -> str:
    return f"{question.strip()}\n\nOptions:\n{listed}\n\nAnswer with the letter and text of the correct option."


def _medix_reference(letter: str, choices: dict[str, str], reference_text: str | None) -> str:
    return f"{letter}. {choices[letter]}".strip().rstrip(".")


LAYOUTS = {"paper": Choices(_paper_question, _paper_reference), "medix": Choices(_medix_question, _medix_reference)}


def _listing(choices: dict[str, str]) -> str:
    return "\n".join(f"{k}. {v}" for k, v in choices.items())


def _mcq(question: str, options: list[str | None] | dict[str, str | None], answer: str | int, layout: Choices,
         reference_text: str | None = None) -> Built:
    """Lettered options. `answer`: a letter or a 0-based index; `reference_text` overrides the reference
    (paper). A None option is left out but keeps its letter (the official listing skips it the same way)."""
    lettered = dict(options) if isinstance(options, dict) else dict(zip(LETTERS, options))
    choices = {k: str(v) for k, v in lettered.items() if v is not None}
    if isinstance(answer, int) or str(answer).strip().lstrip("-").isdigit():
        position = int(answer)
        if not 0 <= position < len(lettered):
            raise ValueError(f"answer index {position} is outside the {len(lettered)} options")
        letter = list(lettered)[position]
    else:
        letter = str(answer).strip()[:1].upper()
    if letter not in choices:
        raise ValueError(f"answer {answer!r} names no option (options: {', '.join(choices) or 'none'})")
    return Built(layout.question(question, _listing(choices)), layout.reference(letter, choices, reference_text),
                 choices)


@shape("mcq_list", Schema(question=Text, choices=Options, answer=Index), LAYOUTS)
def mcq_list(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol, layout: Choices) -> Built:
    """Options in one list column, the answer as an index (MMLU)."""
    return _mcq(str(row[cols["question"]]), list(row[cols["choices"]]), int(row[cols["answer"]]), layout)


@shape("mcq_columns", Schema(question=Text, options=OptionalText, answer=Index | Letter), LAYOUTS)
def mcq_columns(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol, layout: Choices) -> Built:
    """One column per option; the answer an index (MedMCQA, MedQA) or a letter."""
    return _mcq(str(row[cols["question"]]), [row[c] for c in cols["options"]], row[cols["answer"]], layout)


@shape("mcq_letters", Schema(question=Text, options=LetterOptions, answer=Letter, answer_text=OptionalText),
       LAYOUTS)
def mcq_letters(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol, layout: Choices) -> Built:
    """Options as {letter: text} with nulls for unused letters; the answer a letter (USMLE self-assessment).
    Under paper the reference is the row's answer-text column (`answer_text`), as the official code reads it."""
    options = dict(sorted((row[cols["options"]] or {}).items()))
    # an empty answer text is the paper's reference as the official loader builds it (3 real USMLE rows)
    text = str(row.get(cols["answer_text"]) or "") if "answer_text" in cols and protocol.reference_as_written else None
    return _mcq(str(row[cols["question"]]), options, str(row[cols["answer"]]), layout, text)


_LETTER_FORM = re.compile(r"^\(?([A-Za-z])\)?\s*[:.)]\s*(.*)$", re.DOTALL)


def _norm(text: object) -> str:
    return " ".join(str(text).split()).casefold()


def match_option(answer: str, values: list[str | None]) -> int | None:
    """The option `answer` names, or None: its text (ignoring case and spacing), its letter alone ("B"),
    or a letter form with or without the text ("B:MRI", "B. MRI", "(B) MRI")."""
    texts = [None if v is None else _norm(v) for v in values]
    if _norm(answer) in texts:
        return texts.index(_norm(answer))
    if len(answer) == 1 and answer.isalpha():
        position = LETTERS.index(answer.upper())
        return position if position < len(values) and values[position] is not None else None
    form = _LETTER_FORM.match(answer)
    if form:
        position, rest = LETTERS.index(form.group(1).upper()), _norm(form.group(2))
        if position < len(values) and values[position] is not None and rest in ("", texts[position]):
            return position
    return None


@shape("mcq_choices", Schema(question=Text, choices=Options | LetterOptions, answer=Text), LAYOUTS)
def mcq_choices(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol, layout: Choices) -> Built:
    """Options in a list (or {letter: text}) column, the answer as the option's text (PMC-VQA).

    paper: as the official loader, the reference is the answer column as written and the options are
    listed whatever the answer says; an answer that names no option (`match_option`) is still an item,
    marked `answer_unmatched` and counted. medix: the reference is `B. text` when the answer names B, else
    the answer as written (marked the same way)."""
    options = row[cols["choices"]]
    values = list(options.values()) if isinstance(options, dict) else list(options)
    answer = str(row[cols["answer"]]).strip()
    position = match_option(answer, values)
    if position is None:
        choices = {k: str(v) for k, v in zip(LETTERS, values) if v is not None}
        return Built(layout.question(str(row[cols["question"]]), _listing(choices)), answer, choices,
                     ("answer_unmatched",))
    return _mcq(str(row[cols["question"]]), values, position, layout,
                answer if protocol.reference_as_written else None)
