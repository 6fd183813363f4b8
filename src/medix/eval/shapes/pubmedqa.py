"""PubMedQA: context(s) + question + the task's fixed choices; the reference is the decision and the long answer.

    shape: pubmedqa      # columns: question, contexts, decision, long_answer; `choices:` per protocol in the YAML

paper: a `Contexts:` block with the FIRST context only, a `Question:` block, `Choices:` with the paper
protocol's choices (True / False / maybe, see the task YAML); the reference is the decision, a newline, the
long answer. medix: every context, its own choices and an answer instruction (`LAYOUTS`).
"""

from __future__ import annotations

from typing import Annotated, Callable

from pydantic import Field

from medix.eval.protocol import Protocol
from medix.eval.registry import TaskSpec
from medix.eval.rows import OptionalText, Schema, Text
from medix.eval.shapes.base import LETTERS, Built, shape


def _paper(contexts, question: str, choices: dict[str, str], decision: str, long_answer: str) -> tuple[str, str]:
    first = contexts[0] if isinstance(contexts, list) and contexts else contexts
    text = (f"Contexts:\n{first}\n\nQuestion:\n{question}\n\nChoices:\n"
            + "\n".join(f"{k}. {v}" for k, v in choices.items()))
    return text.strip(), f"{decision}\n{long_answer}".strip()


def _medix(contexts, question: str, choices: dict[str, str], decision: str, long_answer: str) -> tuple[str, str]:
    context = "\n".join(contexts) if isinstance(contexts, list) else str(contexts)
    text = (f"Context:\n{context}\n\nQuestion: {question.strip()}\n\n"
            f"Choices: {', '.join(choices.values())}. Answer with one of them, then a short justification.")
    return text, f"{decision}. {long_answer}".strip()


# protocol -> (contexts, question, choices, decision, long answer) -> (question, reference)
LAYOUTS = {"paper": _paper, "medix": _medix}
Contexts = Annotated[list[str], Field(min_length=1)] | Text


@shape("pubmedqa", Schema(question=Text, contexts=Contexts, decision=Text, long_answer=OptionalText), LAYOUTS)
def pubmedqa(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol,
             layout: Callable[..., tuple[str, str]]) -> Built:
    """The choices are the task's for this protocol (`choices:`; 'medix' is the fallback)."""
    choices = dict(zip(LETTERS, spec.choices.get(protocol.name) or spec.choices["medix"]))
    long_answer = str(row.get(cols["long_answer"]) or "").strip()
    question, reference = layout(row[cols["contexts"]], row[cols["question"]], choices, row[cols["decision"]],
                                 long_answer)
    return Built(question, reference, choices)
