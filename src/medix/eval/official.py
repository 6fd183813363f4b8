"""`--official-tasks PATH`: prompt fields read from the user's own copy of the official evaluation code.

    medix eval run --model M --official-tasks ~/MediX-R1/eval/tasks.yaml      # or the eval/ folder

medix ships its own wording; this reproduces the published prompts exactly without medix holding their
text. From `tasks.yaml` (read with PyYAML, a YAML 1.1 loader like the official code's, so unquoted
`yes` / `no` become True / False exactly as in the published prompts): each task's dataset (`path`,
`name`, `split`) and fixed `choices`; an `instruction` key, where a copy has one. From `utils.py` next to
it (parsed, never run): the fixed question each task gets in the loader, an
`if dataset_name == '<task>': question = "..."` assignment (the MIMIC-CXR tasks), turned into a format
string over the row's columns. Column names in the file are compared with the task YAMLs; a difference
is logged, since medix reads its rows through its own column mapping.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import yaml

from medix.errors import MedixError
from medix.eval.registry import Source, TaskSpec
from medix.files import read_text

log = logging.getLogger(__name__)
_COLUMN_KEYS = ("question_column", "answer_column", "answer_id", "choices_column")
_MAX_CHOICE = 2000  # characters: an option longer than any benchmark's is a broken (or hostile) file


def _tasks_file(path: Path) -> Path:
    file = path / "tasks.yaml" if path.is_dir() else path
    if not file.is_file():
        raise MedixError(f"--official-tasks {path}: no such file (give the official eval/tasks.yaml or its folder)")
    return file


def read_official_tasks(path: str | Path) -> dict[str, dict]:
    """{task: its entry} from an official-shaped tasks.yaml (groups `llm:` / `vlm:` of task mappings)."""
    file = _tasks_file(Path(path))
    try:
        data = yaml.safe_load(read_text(file))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise MedixError(f"--official-tasks {file}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") \
            from None
    except MedixError as err:  # not UTF-8: file and line named
        raise MedixError(f"--official-tasks: {err}") from None
    if not isinstance(data, dict):
        raise MedixError(f"--official-tasks {file}: expected groups (llm:, vlm:) of task mappings")
    tasks: dict[str, dict] = {}
    for group, entries in data.items():
        if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
            raise MedixError(f"--official-tasks {file}, group {group!r}: expected task name → mapping")
        tasks.update(entries)
    return tasks


def _format_part(node: ast.expr, file: Path) -> str:
    """One piece of an f-string as a format-string piece: literals escaped, `sample.get("c")` /
    `sample["c"]` as `{c}`; anything else cannot be reproduced without running the code."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.replace("{", "{{").replace("}", "}}")
    if isinstance(node, ast.FormattedValue):
        value = node.value
        column = None
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "get" \
                and value.args and isinstance(value.args[0], ast.Constant):
            column = value.args[0].value
        elif isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Constant):
            column = value.slice.value
        if isinstance(column, str) and column.isidentifier():  # a plain name: no attribute, index or format spec
            return "{" + column + "}"
        if column is not None:
            raise MedixError(f"--official-tasks: {file}, line {node.lineno}: column {column!r} is not a plain name")
    raise MedixError(f"--official-tasks: {file}, line {node.lineno}: a question built from an expression medix "
                     "cannot read without running the code; use the task YAML's `instruction` instead")


def fixed_questions(utils: Path) -> dict[str, str]:
    """{task: format string} for every `if dataset_name == '<task>': question = <string>` in `utils`."""
    try:
        tree = ast.parse(read_text(utils), str(utils))
    except SyntaxError as err:
        raise MedixError(f"--official-tasks: {utils}, line {err.lineno}: not valid Python ({err.msg})") from None
    except MedixError as err:  # not UTF-8
        raise MedixError(f"--official-tasks: {err}") from None
    found = {}
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if not (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "dataset_name"
                and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and [getattr(t, "id", None) for t in stmt.targets] == ["question"]:
                parts = stmt.value.values if isinstance(stmt.value, ast.JoinedStr) else [stmt.value]
                found[str(test.comparators[0].value)] = "".join(_format_part(p, utils) for p in parts)
    return found


def _check_entry(task: str, entry: dict, file: Path) -> None:
    """The fields medix reads from a task's entry have the official file's types: `path`, `name`, `split`,
    `instruction` text; `choices` a list of scalars (YAML 1.1 reads `yes` as True) of bounded length."""
    at = f"--official-tasks {file}, task {task}"
    for key in ("path", "name", "split", "instruction"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise MedixError(f"{at}: {key} is {type(entry[key]).__name__} {str(entry[key])[:60]!r}, not text")
    choices = entry.get("choices")
    if choices is None:
        return
    if not isinstance(choices, list) or len(choices) > 26:
        raise MedixError(f"{at}: choices must be a list of at most 26 options, got {type(choices).__name__}")
    for n, option in enumerate(choices):
        if isinstance(option, (list, dict)) or len(str(option)) > _MAX_CHOICE:
            raise MedixError(f"{at}: choice {n + 1} is not one option's text ({type(option).__name__}, "
                             f"{len(str(option))} characters)")


def _check_columns(spec: TaskSpec, entry: dict) -> None:
    named = {c for v in spec.columns.values() for c in (v if isinstance(v, list) else [v])}
    for key in _COLUMN_KEYS:
        official = entry.get(key)
        for column in official if isinstance(official, list) else [official]:
            if isinstance(column, str) and column not in named:
                log.warning("--official-tasks: %s: the official %s %r is no column of the task YAML (%s)",
                            spec.name, key, column, ", ".join(sorted(named)))


def apply_official(specs: list[TaskSpec], path: str | Path) -> list[TaskSpec]:
    """`specs` with the prompt fields of the official files (see the module docstring)."""
    file = _tasks_file(Path(path))
    entries = read_official_tasks(file)
    utils = file.parent / "utils.py"
    questions = fixed_questions(utils) if utils.is_file() else {}
    if not utils.is_file():
        log.warning("--official-tasks: no utils.py next to %s; report tasks keep medix's instruction wording", file)
    out = []
    for spec in specs:
        entry = entries.get(spec.name)
        if entry is None:
            log.warning("--official-tasks: %s is not in %s; it keeps medix's prompt", spec.name, file)
            out.append(spec)
            continue
        _check_entry(spec.name, entry, file)
        _check_columns(spec, entry)
        update: dict = {}
        if entry.get("path"):
            name = entry.get("name", "default")
            update["source"] = Source(hub=entry["path"], config=None if name == "default" else name,
                                      split=entry.get("split", "test"))
        if isinstance(entry.get("choices"), list):  # f"{option}" as the official prompt writes each one
            update["choices"] = {**spec.choices, "paper": [f"{c}" for c in entry["choices"] if c is not None]}
        if isinstance(entry.get("instruction"), str):
            update["instruction"] = entry["instruction"]
        if spec.name in questions:
            update["prompt"] = questions[spec.name]
        out.append(spec.model_copy(update=update))
    return out
