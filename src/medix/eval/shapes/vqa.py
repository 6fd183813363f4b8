"""Open visual question answering: the question as written, the answer as the reference, under every protocol.

    shape: vqa           # columns: question, answer (and image)

The smallest shape: a new one is a module like this in `medix/eval/shapes/` (no other file changes).
"""

from __future__ import annotations

from medix.eval.protocol import Protocol
from medix.eval.registry import TaskSpec
from medix.eval.rows import Schema, Text
from medix.eval.shapes.base import Built, shape


@shape("vqa", Schema(question=Text, answer=Text))  # no layouts: one question for every protocol
def vqa(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol, layout: None) -> Built:
    return Built(str(row[cols["question"]]).strip(), str(row[cols["answer"]]).strip(), None)
