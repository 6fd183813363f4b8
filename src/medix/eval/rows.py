"""Row schemas: the type of every field a task shape's builder reads (each shape declares its `Schema`).

    schema = Schema(question=Text, choices=Options, answer=Index)      # in medix/eval/shapes/mcq.py
    problems = check_row(row, schema, spec.columns)   # -> [BadField(role, column, value, expected)]; [] = good

A row with a field of the wrong type (`label: true`, `cop: "Cardiology"`, `answer: null`, `choices` as a
string, `question: 12345`) is never turned into a question: `load_task` skips it, names it (file, line,
field, value) in a warning and counts it (`medix eval list`, scores.json `bad_rows`, the report). The
rule is in docs/eval.md: a bad row is skipped; a task whose rows are ALL bad is skipped as unavailable.
Types are strict (no coercion): `True` is not an int, `12345` is not a question, `"2"` is not an index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

Text = Annotated[str, StringConstraints(min_length=1)]  # a question or reference may not be empty
OptionalText = str | None
Options = Annotated[list[OptionalText], Field(min_length=2, max_length=26)]  # lettered A..Z
LetterOptions = Annotated[dict[Annotated[str, StringConstraints(pattern=r"^[A-Z]$")], OptionalText],
                          Field(min_length=2)]
Index = Annotated[int, Field(ge=0)]
Letter = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]$")]


class Schema:
    """Role -> type of the column that role names (a role naming several columns: each of them); the
    validators are built once, when the shape is declared."""

    def __init__(self, **types: Any):
        self.types = types
        self.adapters = {role: TypeAdapter(t) for role, t in types.items()}


@dataclass(frozen=True)
class BadField:
    """One field of one row that does not have the type its role needs."""

    role: str
    column: str
    value: Any
    expected: str

    def describe(self) -> str:
        shown = repr(self.value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return f"field {self.column!r} = {shown} ({self.expected})"


def _expected(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function", "union")))
    return f"{first['msg'].lower()}{f' at {where}' if where else ''}"


def check_row(row: dict, schema: Schema, columns: dict[str, str | list[str]]) -> list[BadField]:
    """Every field of `row` the shape reads (`columns`: the task's role -> column names), checked against
    its schema."""
    problems = []
    for role, adapter in schema.adapters.items():
        if role not in columns:
            continue  # an optional role this task's YAML does not map (e.g. answer_text)
        names = columns[role] if isinstance(columns[role], list) else [columns[role]]
        for column in names:
            value = row.get(column)
            try:
                adapter.validate_python(value, strict=True)
            except ValidationError as err:
                missing = column not in row
                problems.append(BadField(role, column, value, "missing" if missing else _expected(err)))
    return problems
