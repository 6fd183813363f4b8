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
from medix.files import cache_dir

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


def _mcq(question: str, options: list[str | None] | dict[str, str | None], answer: str | int,
         protocol: str, reference_text: str | None = None) -> Built:
    """Lettered options. `answer`: a letter or a 0-based index; `reference_text` overrides the reference.

    paper: the question, a blank line, `Choices:` and one `A. text` line per option; the reference is the
    option's text. medix: `Options:` plus an answer instruction; the reference is `B. text`.
    A None option is left out but keeps its letter (the official listing skips it the same way).
    """
    choices = dict(options) if isinstance(options, dict) else dict(zip(LETTERS, options))
    choices = {k: str(v) for k, v in choices.items() if v is not None}
    if isinstance(answer, int) or str(answer).strip().lstrip("-").isdigit():
        position = int(answer)
        letters = list(dict(options) if isinstance(options, dict) else dict(zip(LETTERS, options)))
        if not 0 <= position < len(letters):
            raise ValueError(f"answer index {position} is outside the {len(letters)} options")
        letter = letters[position]
    else:
        letter = str(answer).strip()[:1].upper()
    if letter not in choices:
        raise ValueError(f"answer {answer!r} names no option (options: {', '.join(choices) or 'none'})")
    listed = "\n".join(f"{k}. {v}" for k, v in choices.items())
    if protocol == "paper":
        reference = choices[letter] if reference_text is None else reference_text
        return f"{question}\n\nChoices:\n{listed}".strip(), reference.strip(), choices
    prompt = f"{question.strip()}\n\nOptions:\n{listed}\n\nAnswer with the letter and text of the correct option."
    return prompt, f"{letter}. {choices[letter]}".strip().rstrip("."), choices


@builder("mcq_list")
def mcq_list(row: dict, cols: dict, spec: TaskSpec, protocol: str) -> Built:
    """Options in one list column, the answer as an index (MMLU)."""
    return _mcq(str(row[cols["question"]]), list(row[cols["choices"]]), int(row[cols["answer"]]), protocol)


@builder("mcq_columns")
def mcq_columns(row: dict, cols: dict, spec: TaskSpec, protocol: str) -> Built:
    """One column per option; the answer an index (MedMCQA, MedQA) or a letter."""
    return _mcq(str(row[cols["question"]]), [row[c] for c in cols["options"]], row[cols["answer"]], protocol)


@builder("mcq_letters")
def mcq_letters(row: dict, cols: dict, spec: TaskSpec, protocol: str) -> Built:
    """Options as {letter: text} with nulls for unused letters; the answer a letter (USMLE self-assessment).
    Under paper the reference is the row's answer-text column (`answer_text`), as the official code reads it."""
    options = dict(sorted((row[cols["options"]] or {}).items()))
    text = str(row.get(cols["answer_text"]) or "") if "answer_text" in cols else None
    return _mcq(str(row[cols["question"]]), options, str(row[cols["answer"]]), protocol, text)


@builder("mcq_choices")
def mcq_choices(row: dict, cols: dict, spec: TaskSpec, protocol: str) -> Built:
    """Options in a list (or {letter: text}) column, the answer as the option's text (PMC-VQA)."""
    options = row[cols["choices"]]
    values = list(options.values()) if isinstance(options, dict) else list(options)
    answer = str(row[cols["answer"]]).strip()
    matches = [i for i, v in enumerate(values) if v is not None and str(v).strip() == answer]
    position = matches[0] if matches else (LETTERS.index(answer[0].upper()) if len(answer) == 1 and
                                           answer.isalpha() else None)
    if position is None:
        raise ValueError(f"answer {answer!r} is none of the options")
    return _mcq(str(row[cols["question"]]), values, position, protocol, answer if protocol == "paper" else None)


@builder("pubmedqa")
def pubmedqa(row: dict, cols: dict, spec: TaskSpec, protocol: str) -> Built:
    """Context(s) + question, choices yes / no / maybe; reference = decision plus the long answer.
    paper: a `Contexts:` block with the FIRST context only, a `Question:` block, `Choices:`; the reference is
    the decision, a newline, the long answer. medix: every context, and an answer instruction."""
    contexts = row[cols["contexts"]]
    choices = {"A": "yes", "B": "no", "C": "maybe"}
    long_answer = str(row.get(cols["long_answer"]) or "").strip()
    if protocol == "paper":
        first = contexts[0] if isinstance(contexts, list) and contexts else contexts
        question = (f"Contexts:\n{first}\n\nQuestion:\n{row[cols['question']]}\n\nChoices:\n"
                    + "\n".join(f"{k}. {v}" for k, v in choices.items()))
        return question.strip(), f"{row[cols['decision']]}\n{long_answer}".strip(), choices
    context = "\n".join(contexts) if isinstance(contexts, list) else str(contexts)
    question = (f"Context:\n{context}\n\nQuestion: {row[cols['question']].strip()}\n\n"
                "Choices: yes, no, maybe. Answer with one of them, then a short justification.")
    return question, f"{row[cols['decision']]}. {long_answer}".strip(), choices


@builder("vqa")
def vqa(row: dict, cols: dict, spec: TaskSpec, protocol: str) -> Built:
    return str(row[cols["question"]]).strip(), str(row[cols["answer"]]).strip(), None


@builder("report")
def report(row: dict, cols: dict, spec: TaskSpec, protocol: str) -> Built:
    """Fixed instruction; summarization appends the report, generation relies on the image.
    paper: `Report:` on its own line, the report, and the trailing colon the official prompt has."""
    question = (spec.instruction or "").strip()
    if "report" in cols:
        text = str(row[cols["report"]]).strip()
        question += f"\n\nReport:\n{text}:" if protocol == "paper" else f"\n\nFindings: {text}"
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


def _archive_image(spec: TaskSpec, row: dict, base: Path | None) -> list[str]:
    """An image named by a column inside the task's image archive (SLAKE's `img_name` in imgs.zip)."""
    archive = spec.image_archive or {}
    name = row.get(archive.get("column", ""))
    if not name:
        return []
    folder = archive.get("folder", "")
    for root in ([base] if base is not None else []) + [cache_dir() / "archives" / spec.name]:
        if (root / folder / name).is_file():
            return [str(root / folder / name)]
    return []


def _missing_reason(spec: TaskSpec, row: dict, base: Path | None) -> str:
    """Why a VLM row has no image, for its failed record: the archive file not found, or an empty column."""
    archive = spec.image_archive or {}
    if archive and row.get(archive.get("column", "")):
        where_ = base / archive.get("folder", "") if base is not None else f"the cached {archive.get('file')}"
        return f"{row[archive['column']]} not found in {where_}"
    column = spec.columns.get("image") or archive.get("column")
    return f"column {column!r} is {'absent' if column not in row else repr(row[column])}"


def fetch_image_archive(spec: TaskSpec) -> None:
    """Download and unpack the task's image archive into the medix cache once (needs the hub)."""
    import zipfile

    from huggingface_hub import hf_hub_download

    target = cache_dir() / "archives" / spec.name
    if (target / ".complete").is_file() or not spec.image_archive:
        return
    try:
        path = hf_hub_download(spec.image_archive["repo"], spec.image_archive["file"], repo_type="dataset")
    except Exception as err:  # noqa: BLE001 — offline, gated or moved: the items are marked image_missing
        log.warning("%s: image archive not available (%s); put it unpacked in DATA_DIR/%s/%s", spec.name,
                    err.__class__.__name__, spec.name, spec.image_archive.get("folder", ""))
        return
    with zipfile.ZipFile(path) as zf:
        zf.extractall(target)
    (target / ".complete").write_text("ok")


def load_items(spec: TaskSpec, data_dir: str | Path | None = None, limit: int | None = None,
               protocol: str = "paper") -> list[EvalItem]:
    """The task's items in dataset order (after `filter`), at most `limit`, built for `protocol`."""
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
    if spec.image_archive and data_dir is None:
        fetch_image_archive(spec)
    items = []
    for index, (item_id, row) in enumerate(zip(ids, rows)):
        try:
            question, reference, choices = build_fn(row, spec.columns, spec, protocol)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as err:
            source = f"{base / 'test.jsonl'}, row {index + 1}" if base is not None else f"item {item_id}"
            raise MedixError(f"task {spec.name}, {source}: cannot build the question "
                             f"({err.__class__.__name__}: {err}); check the row and the columns in its YAML") from None
        image_col = spec.columns.get("image")
        images = _archive_image(spec, row, base)  # an archive name wins, as in the official loader
        if not images and image_col:
            images = _image_paths(row.get(image_col), base, spec.name, item_id)
        meta = {k: row.get(k) for k in spec.breakdowns if row.get(k) is not None}
        if (image_col or spec.image_archive) and not images:
            meta["image_missing"], meta["image_missing_reason"] = True, _missing_reason(spec, row, base)
        answer_idx = row.get("answer_idx")
        items.append(EvalItem(id=item_id, task=spec.name, question=question, reference=reference,
                              choices=choices, images=images, meta=meta, index=index,
                              answer_idx=None if answer_idx is None else str(answer_idx)))
    return items
