"""Dataset rows → EvalItems, built as the paper does; local mirrors or the hub.

    items = load_items(registry()["medqa"], data_dir="/data/benchmarks", limit=10)

Builders are registered by name (`builder:` in a task YAML). Each reads its columns through the task's
`columns` mapping, so a new benchmark with the same shape needs only a YAML file.
Local mirrors: `DATA_DIR/<task>/test.jsonl` with the hub's column names, image paths relative to the
task folder. A task without data raises `TaskUnavailable` with the reason (the run lists it as skipped).
"""

from __future__ import annotations

import logging
import string
from pathlib import Path
from typing import Callable

from medix.data.datasets import read_records
from medix.errors import MedixError
from medix.eval.registry import TaskSpec, suggest
from medix.eval.schema import EvalItem
from medix.models import cache_dir

log = logging.getLogger(__name__)
LETTERS = string.ascii_uppercase
Built = tuple[str, str, "dict[str, str] | None"]  # (question, reference, choices)
BUILDERS: dict[str, Callable[[dict, dict, TaskSpec], Built]] = {}


class TaskUnavailable(MedixError):
    """The task's data cannot be read here; the message is the reason shown in the skipped list."""


def builder(name: str):
    def register(fn):
        BUILDERS[name] = fn
        return fn
    return register


def _mcq(question: str, options: list[str] | dict[str, str], answer_letter: str) -> Built:
    choices = options if isinstance(options, dict) else dict(zip(LETTERS, options))
    listed = "\n".join(f"{letter}. {text}" for letter, text in choices.items())
    prompt = f"{question.strip()}\n\nOptions:\n{listed}\n\nAnswer with the letter and text of the correct option."
    answer_text = choices.get(answer_letter, "")
    return prompt, f"{answer_letter}. {answer_text}".strip().rstrip("."), choices


@builder("mcq_list")
def mcq_list(row: dict, cols: dict, spec: TaskSpec) -> Built:
    """Options in one list column, the answer as an index (MMLU)."""
    return _mcq(row[cols["question"]], list(row[cols["choices"]]), LETTERS[int(row[cols["answer"]])])


@builder("mcq_columns")
def mcq_columns(row: dict, cols: dict, spec: TaskSpec) -> Built:
    """One column per option; the answer an index (MedMCQA, MedQA) or a letter (PMC-VQA)."""
    answer = row[cols["answer"]]
    letter = LETTERS[int(answer)] if isinstance(answer, int) or str(answer).isdigit() else str(answer).strip()[:1]
    return _mcq(row[cols["question"]], [str(row[c]) for c in cols["options"]], letter.upper())


@builder("mcq_letters")
def mcq_letters(row: dict, cols: dict, spec: TaskSpec) -> Built:
    """Options as {letter: text} with nulls for unused letters; the answer a letter (USMLE self-assessment).

    Null options are dropped and the others keep their letters, so the answer letter stays valid."""
    options = {k: v for k, v in sorted((row[cols["options"]] or {}).items()) if v is not None}
    return _mcq(row[cols["question"]], options, str(row[cols["answer"]]).strip().upper())


@builder("pubmedqa")
def pubmedqa(row: dict, cols: dict, spec: TaskSpec) -> Built:
    """Contexts + question, choices yes / no / maybe; reference = decision plus the long answer."""
    contexts = row[cols["contexts"]]
    context = "\n".join(contexts) if isinstance(contexts, list) else str(contexts)
    question = (f"Context:\n{context}\n\nQuestion: {row[cols['question']].strip()}\n\n"
                "Choices: yes, no, maybe. Answer with one of them, then a short justification.")
    reference = f"{row[cols['decision']]}. {str(row.get(cols['long_answer']) or '').strip()}".strip()
    return question, reference, {"A": "yes", "B": "no", "C": "maybe"}


@builder("vqa")
def vqa(row: dict, cols: dict, spec: TaskSpec) -> Built:
    return str(row[cols["question"]]).strip(), str(row[cols["answer"]]).strip(), None


@builder("report")
def report(row: dict, cols: dict, spec: TaskSpec) -> Built:
    """Fixed instruction; summarization appends the findings, generation relies on the image."""
    question = (spec.instruction or "").strip()
    if "report" in cols:
        question += f"\n\nFindings: {str(row[cols['report']]).strip()}"
    return question, str(row[cols["answer"]]).strip(), None


def _rows(spec: TaskSpec, data_dir: str | Path | None) -> tuple[list[dict], Path | None]:
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise MedixError(f"--data-dir {root} does not exist (a folder holding <task>/test.jsonl)")
        file = root / spec.name / "test.jsonl"
        if not file.is_file():
            raise TaskUnavailable(f"no {file}")
        return list(read_records(file)), file.parent
    if not spec.source.hub:
        raise TaskUnavailable("no hub source; needs --data-dir with a local mirror")
    import datasets

    try:
        data = datasets.load_dataset(spec.source.hub, spec.source.config, split=spec.source.split)
    except Exception as err:  # noqa: BLE001 — datasets raises many types for "cannot reach / no such dataset"
        raise TaskUnavailable(f"hub {spec.source_label} not reachable ({err.__class__.__name__}); "
                              "use --data-dir with a local mirror") from None
    return list(data), None


def _image_paths(value, base: Path | None, task: str, item_id: str) -> list[str]:
    """Mirror paths (relative to the task folder) or hub PIL images (saved once under the medix cache)."""
    values = value if isinstance(value, list) else [value]
    out = []
    for n, v in enumerate(x for x in values if x is not None):
        if isinstance(v, dict):
            v = v.get("path") or v.get("bytes")
        if isinstance(v, str):
            path = Path(v)
            out.append(str(path if path.is_absolute() or base is None else base / path))
        elif hasattr(v, "save"):  # a PIL image from the hub
            target = cache_dir() / "eval_images" / task / f"{item_id.replace('/', '_')}-{n}.png"
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                v.convert("RGB").save(target)
            out.append(str(target))
    return out


def load_items(spec: TaskSpec, data_dir: str | Path | None = None, limit: int | None = None) -> list[EvalItem]:
    """The task's items in dataset order (after `filter`), at most `limit`."""
    rows, base = _rows(spec, data_dir)
    rows = [r for r in rows if all(str(r.get(k)) == v for k, v in spec.filter.items())]
    if limit is not None:
        rows = rows[:limit]
    build_fn = BUILDERS.get(spec.builder)
    if build_fn is None:
        raise MedixError(f"task {spec.name}: unknown builder {spec.builder!r}{suggest(spec.builder, list(BUILDERS))}")
    id_column = spec.columns.get("id")
    ids = [str(r.get(id_column)) for r in rows] if id_column else []
    if not ids or len(set(ids)) != len(ids) or "None" in ids:
        ids = [str(i) for i in range(len(rows))]  # no usable id column: the row number is stable
    items = []
    for item_id, row in zip(ids, rows):
        try:
            question, reference, choices = build_fn(row, spec.columns, spec)
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise MedixError(f"task {spec.name}, item {item_id}: cannot build the question "
                             f"({err.__class__.__name__}: {err}); check the columns in its YAML") from None
        image_col = spec.columns.get("image")
        images = _image_paths(row.get(image_col), base, spec.name, item_id) if image_col else []
        meta = {k: row.get(k) for k in spec.breakdowns if row.get(k) is not None}
        if image_col and not images:
            meta["image_missing"] = True
        items.append(EvalItem(id=item_id, task=spec.name, question=question, reference=reference,
                              choices=choices, images=images, meta=meta))
    return items
