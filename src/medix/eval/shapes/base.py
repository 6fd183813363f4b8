"""The task-shape record and its one registry; each shape module in this package registers with `@shape`.

    @shape("vqa", Schema(question=Text, answer=Text))
    def vqa(row, cols, spec, protocol, layout) -> Built:
        return Built(str(row[cols["question"]]).strip(), str(row[cols["answer"]]).strip(), None)

    SHAPES["vqa"].layout(get_protocol("paper"))   # None: the same question under every protocol

A shape is how a benchmark row becomes a question and a reference: the builder, the type of every column it
reads (`medix.eval.rows.Schema`, checked before it runs) and, where the protocols lay the question out
differently, one layout per protocol name, side by side in one module of `medix/eval/shapes/`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple

from medix.errors import MedixError
from medix.eval.protocol import Protocol
from medix.eval.rows import Schema
from medix.registry import Registry

LETTERS = string.ascii_uppercase  # option letters, A..Z


class Built(NamedTuple):
    """What a builder makes of one row."""

    question: str
    reference: str
    choices: "dict[str, str] | None"
    flags: tuple[str, ...] = ()  # data notes counted per task, e.g. ("answer_unmatched",)


@dataclass(frozen=True)
class Shape:
    """One task shape (a task YAML's `shape:`). `build(row, cols, spec, protocol, layout) -> Built` reads the
    row through the task's `columns` (cols); `layout` is `layouts[protocol.name]`, or None for a shape whose
    `layouts` is None (one question for every protocol). `where`: the file that defines it, for messages."""

    name: str
    schema: Schema
    build: Callable[..., Built]
    layouts: Mapping[str, Any] | None = None
    where: str = ""

    def layout(self, protocol: Protocol) -> Any:
        """This protocol's layout; a protocol the shape has none for is refused (before any row is read)."""
        if self.layouts is None:
            return None
        if protocol.name not in self.layouts:
            raise MedixError(f"task shape {self.name!r} has no question layout for protocol {protocol.name!r} "
                             f"(it has: {', '.join(self.layouts)}); add a {protocol.name!r} entry to its layouts "
                             f"in {self.where}")
        return self.layouts[protocol.name]


SHAPES: Registry[Shape] = Registry("task shape", add="a module in medix/eval/shapes/ with a @shape function")


def shape(name: str, schema: Schema, layouts: Mapping[str, Any] | None = None):
    """Decorator: register the function it wraps as the builder of the task shape `name`."""
    def register(build: Callable[..., Built]) -> Callable[..., Built]:
        SHAPES.register(name, Shape(name, schema, build, layouts, build.__module__.replace(".", "/") + ".py"))
        return build
    return register
