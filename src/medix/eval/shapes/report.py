"""Reports: a fixed instruction; summarization appends the report, generation relies on the image.

    shape: report        # columns: answer (the reference report), report (summarization only), image

paper: `Report:` on its own line, the report, and the trailing colon the official prompt has; with
`--official-tasks` the whole question is the official one (`spec.prompt`, a format string over the row).
medix: `Findings:` and the report (`LAYOUTS`).
"""

from __future__ import annotations

from typing import Callable

from medix.eval.protocol import Protocol
from medix.eval.registry import TaskSpec
from medix.eval.rows import Schema, Text
from medix.eval.shapes.base import Built, shape


def _paper(instruction: str, report: str) -> str:
    return f"{instruction}\n\nReport:\n{report}:"  # the trailing colon the official prompt has


def _medix(instruction: str, report: str) -> str:
    return f"{instruction}\n\nFindings: {report}"


LAYOUTS = {"paper": _paper, "medix": _medix}  # protocol -> (instruction, report) -> question


@shape("report", Schema(report=Text, answer=Text), LAYOUTS)
def report(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol,
           layout: Callable[[str, str], str]) -> Built:
    reference = str(row[cols["answer"]]).strip()
    if protocol.official_prompts and spec.prompt is not None:
        return Built(spec.prompt.format_map({k: "" if v is None else v for k, v in row.items()}).strip(),
                     reference, None)
    question = (spec.instruction or "").strip()
    if "report" in cols:
        question = layout(question, str(row[cols["report"]]).strip())
    return Built(question, reference, None)
