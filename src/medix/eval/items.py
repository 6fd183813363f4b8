"""Dataset rows → EvalItems, built as the paper does; local mirrors or the hub.

    items = load_items(registry()["medqa"], data_dir="/data/benchmarks", limit=10)

Builders are registered by name (`builder:` in a task YAML). Each reads its columns through the task's
`columns` mapping, so a new benchmark with the same shape needs only a YAML file.
Local mirrors: `DATA_DIR/<task>/test.jsonl` with the hub's column names, image paths relative to the
task folder. A task without data raises `TaskUnavailable` with the reason (the run lists it as skipped).
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from medix.data.datasets import read_records
from medix.errors import MedixError
from medix.eval.protocol import Protocol, get_protocol
from medix.eval.registry import TaskSpec
from medix.registry import Registry
from medix.eval.rows import check_row
from medix.eval.schema import EvalItem
from medix.files import cache_dir

log = logging.getLogger(__name__)
LETTERS = string.ascii_uppercase


class Built(NamedTuple):
    question: str
    reference: str
    choices: "dict[str, str] | None"
    flags: tuple[str, ...] = ()  # data notes counted per task, e.g. ("answer_unmatched",)


BUILDERS: Registry[Callable[[dict, dict, TaskSpec, Protocol], Built]] = Registry(
    "task builder", add="a @builder function in medix/eval/items.py")


class TaskUnavailable(MedixError):
    """The task's data cannot be read here; the message is the reason shown in the skipped list."""


def builder(name: str):
    return BUILDERS.register(name)


def _mcq(question: str, options: list[str | None] | dict[str, str | None], answer: str | int,
         protocol: Protocol, reference_text: str | None = None) -> Built:
    """Lettered options. `answer`: a letter or a 0-based index; `reference_text` overrides the reference
    (paper). The layout is the protocol's: paper, `Choices:` and one `A. text` line per option, the
    option's text as reference; medix, `Options:` plus an answer instruction, `B. text` as reference.
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
    return Built(protocol.choices_block(question, listed), protocol.mcq_reference(letter, choices, reference_text),
                 choices)


@builder("mcq_list")
def mcq_list(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol) -> Built:
    """Options in one list column, the answer as an index (MMLU)."""
    return _mcq(str(row[cols["question"]]), list(row[cols["choices"]]), int(row[cols["answer"]]), protocol)


@builder("mcq_columns")
def mcq_columns(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol) -> Built:
    """One column per option; the answer an index (MedMCQA, MedQA) or a letter."""
    return _mcq(str(row[cols["question"]]), [row[c] for c in cols["options"]], row[cols["answer"]], protocol)


@builder("mcq_letters")
def mcq_letters(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol) -> Built:
    """Options as {letter: text} with nulls for unused letters; the answer a letter (USMLE self-assessment).
    Under paper the reference is the row's answer-text column (`answer_text`), as the official code reads it."""
    options = dict(sorted((row[cols["options"]] or {}).items()))
    # an empty answer text is the paper's reference as the official loader builds it (3 real USMLE rows)
    text = str(row.get(cols["answer_text"]) or "") if "answer_text" in cols and protocol.reference_as_written else None
    return _mcq(str(row[cols["question"]]), options, str(row[cols["answer"]]), protocol, text)


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


@builder("mcq_choices")
def mcq_choices(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol) -> Built:
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
        listed = "\n".join(f"{k}. {v}" for k, v in choices.items())
        return Built(protocol.choices_block(str(row[cols["question"]]), listed), answer, choices, ("answer_unmatched",))
    return _mcq(str(row[cols["question"]]), values, position, protocol,
                answer if protocol.reference_as_written else None)


@builder("pubmedqa")
def pubmedqa(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol) -> Built:
    """Context(s) + question + the task's fixed `choices`; reference = decision plus the long answer.
    paper: a `Contexts:` block with the FIRST context only, a `Question:` block, `Choices:` with the paper
    protocol's choices (True / False / maybe, see the task YAML); the reference is the decision, a newline,
    the long answer. medix: every context, its own choices and an answer instruction."""
    choices = dict(zip(LETTERS, spec.choices.get(protocol.name) or spec.choices["medix"]))
    long_answer = str(row.get(cols["long_answer"]) or "").strip()
    question, reference = protocol.pubmedqa(row[cols["contexts"]], row[cols["question"]], choices,
                                            row[cols["decision"]], long_answer)
    return Built(question, reference, choices)


@builder("vqa")
def vqa(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol) -> Built:
    return Built(str(row[cols["question"]]).strip(), str(row[cols["answer"]]).strip(), None)


@builder("report")
def report(row: dict, cols: dict, spec: TaskSpec, protocol: Protocol) -> Built:
    """Fixed instruction; summarization appends the report, generation relies on the image.
    paper: `Report:` on its own line, the report, and the trailing colon the official prompt has; with
    `--official-tasks` the whole question is the official one (`spec.prompt`, a format string over the row)."""
    reference = str(row[cols["answer"]]).strip()
    if protocol.official_prompts and spec.prompt is not None:
        return Built(spec.prompt.format_map({k: "" if v is None else v for k, v in row.items()}).strip(),
                     reference, None)
    question = (spec.instruction or "").strip()
    if "report" in cols:
        text = str(row[cols["report"]]).strip()
        question = protocol.report_question(question, text)
    return Built(question, reference, None)


class Rows:
    """A task's rows: a local mirror's (`base`: its task folder) or one hub split's, read from one commit
    (`revision`) row by row, images left encoded until their item is built (a hub image dataset is never
    decoded whole). A breakdown column the hub stores as a `ClassLabel` reads as its label, as a mirror has it."""

    def __init__(self, records, base: Path | None = None, revision: str | None = None, labels: dict | None = None):
        self.records, self.base, self.revision, self.labels = records, base, revision, labels or {}

    def __len__(self) -> int:
        return len(self.records)

    def column(self, name: str) -> list:
        if isinstance(self.records, list):
            return [r.get(name) for r in self.records]
        return list(self.records[name]) if name in self.records.column_names else [None] * len(self.records)

    def row(self, n: int) -> dict:
        row = dict(self.records[n])
        for name, feature in self.labels.items():
            if isinstance(row.get(name), int):
                row[name] = feature.int2str(row[name])
        return row

    def where(self, line: int) -> str:
        return f"{self.base / 'test.jsonl'}, line {line}" if self.base is not None else f"row {line}"


def _rows(spec: TaskSpec, data_dir: str | Path | None) -> Rows:
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise MedixError(f"--data-dir {root} does not exist (a folder holding <task>/test.jsonl)")
        file = root / spec.name / "test.jsonl"
        if not file.is_file():
            raise TaskUnavailable(f"no {file}")
        return Rows(list(read_records(file)), file.parent)
    if not spec.source.hub:
        raise TaskUnavailable("no hub source; needs --data-dir with a local mirror")
    from medix import hub

    try:
        data, sha = hub.load_dataset(spec.source.hub, spec.source.config, spec.source.split, spec.source.revision,
                                     local_fix="use --data-dir with a local mirror")
    except MedixError as err:
        raise TaskUnavailable(str(err)) from None
    return Rows(_encoded_images(data), None, sha, _label_columns(data, spec.breakdowns))


def _encoded_images(data):
    """The split with its `Image()` columns (also inside a list) left as {bytes, path}: decoded per item."""
    from datasets import Image, List, Sequence

    for name, feature in data.features.items():
        if isinstance(feature, Image) and feature.decode:
            data = data.cast_column(name, Image(decode=False))
        elif isinstance(feature, (List, Sequence)) and isinstance(feature.feature, Image):
            data = data.cast_column(name, List(Image(decode=False)))
    return data


def _label_columns(data, names: list[str]) -> dict:
    from datasets import ClassLabel

    return {n: data.features[n] for n in names if isinstance(data.features.get(n), ClassLabel)}


def _image_paths(value, rows: Rows, task: str, item_id: str) -> list[str]:
    """Mirror paths (relative to the task folder), or hub images written once under the medix cache with the
    bytes the hub stores (a JPEG stays the same JPEG), in a folder per dataset commit."""
    values = value if isinstance(value, list) else [value]
    out = []
    for n, v in enumerate(x for x in values if x is not None):
        if isinstance(v, dict) and v.get("bytes") is None:
            v = v.get("path")
        if isinstance(v, str):
            path = Path(v)
            out.append(str(path if path.is_absolute() or rows.base is None else rows.base / path))
        elif isinstance(v, dict) or hasattr(v, "save"):
            out.append(str(_cached_image(v, task, item_id, n, rows.revision)))
    return out


def _cached_image(image, task: str, item_id: str, n: int, revision: str | None) -> Path:
    folder = cache_dir() / "eval_images" / task / (revision or "unversioned")[:12]
    stem = f"{item_id.replace('/', '_')}-{n}"
    if isinstance(image, dict):  # {bytes, path}: the stored file, as it is
        suffix = Path(image.get("path") or "").suffix.lower() or _format_suffix(image["bytes"])
        target = folder / f"{stem}{suffix}"
        if not target.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".partial")
            partial.write_bytes(image["bytes"])
            partial.replace(target)
        return target
    target = folder / f"{stem}.png"  # a decoded PIL image
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        image.convert("RGB").save(target)
    return target


def _format_suffix(data: bytes) -> str:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return "." + (image.format or "png").lower().replace("jpeg", "jpg")


def _archive_image(spec: TaskSpec, row: dict, roots: list[Path]) -> list[str]:
    """An image named by a column inside the task's image archive (SLAKE's `img_name` in imgs.zip)."""
    archive = spec.image_archive or {}
    name = row.get(archive.get("column", ""))
    if not name:
        return []
    folder = archive.get("folder", "")
    for root in roots:
        if (root / folder / name).is_file():
            return [str(root / folder / name)]
    return []


def _missing_reason(spec: TaskSpec, row: dict, roots: list[Path]) -> str:
    """Why a VLM row has no image, for its failed record: the archive file not found, or an empty column."""
    archive = spec.image_archive or {}
    if archive and row.get(archive.get("column", "")):
        where_ = " or ".join(str(r / archive.get("folder", "")) for r in roots) or \
            f"the hub's {archive.get('file')} (not downloaded)"
        return f"{row[archive['column']]} not found in {where_}"
    column = spec.columns.get("image") or archive.get("column")
    return f"column {column!r} is {'absent' if column not in row else repr(row[column])}"


def fetch_image_archive(spec: TaskSpec) -> Path | None:
    """The task's image archive, downloaded and unpacked into the medix cache once per commit of its
    repository; None (with a warning) when the hub cannot give it: its items are then marked image_missing."""
    import zipfile

    from medix import hub

    archive = spec.image_archive
    if not archive:
        return None
    revision = spec.source.revision if archive["repo"] == spec.source.hub else None
    fix = f"put it unpacked in DATA_DIR/{spec.name}/{archive.get('folder', '')} and use --data-dir"
    try:
        sha, _ = hub.resolve(archive["repo"], "dataset", revision)
    except Exception as err:  # noqa: BLE001 — offline, gated or moved: said once, items marked image_missing
        log.warning("%s: image archive not available: %s", spec.name, hub.explain(err, archive["repo"], "dataset",
                                                                                   revision, fix))
        return None
    target = cache_dir() / "archives" / spec.name / (sha or "unversioned")
    if (target / ".complete").is_file():
        return target
    try:
        path, sha = hub.download(archive["repo"], archive["file"], "dataset", sha or revision, fix)
    except MedixError as err:
        log.warning("%s: image archive not available: %s", spec.name, err)
        return None
    with zipfile.ZipFile(path) as zf:
        zf.extractall(target)
    (target / ".complete").write_text("ok")
    return target


@dataclass
class TaskData:
    """A task's items plus what loading found: rows skipped as bad (each named) and per-item data notes."""

    items: list[EvalItem]
    bad_rows: list[str] = field(default_factory=list)  # "FILE, line N: field 'x' = ... (why)"
    flags: dict[str, int] = field(default_factory=dict)  # e.g. {"answer_unmatched": 3}
    revision: str | None = None  # the hub commit the rows were read from; None for a local mirror

    def checks(self) -> dict:
        """The counts `medix eval list`, scores.json and the report show."""
        return {"bad_rows": len(self.bad_rows), "bad_row_examples": self.bad_rows[:5], **self.flags}


def load_items(spec: TaskSpec, data_dir: str | Path | None = None, limit: int | None = None,
               protocol: Protocol | str = "paper") -> list[EvalItem]:
    """The task's items in dataset order (after `filter`), at most `limit`, built for `protocol`."""
    return load_task(spec, data_dir, limit, protocol).items


def _ids(spec: TaskSpec, rows: Rows, lines: list[int]) -> list[str]:
    id_column = spec.columns.get("id")
    ids = []
    if id_column:
        column = rows.column(id_column)
        ids = [str(column[n - 1]) for n in lines]
    if not ids or len(set(ids)) != len(ids) or "None" in ids:
        ids = [str(i) for i in range(len(lines))]  # no usable id column: the row number is stable
    return ids


def load_task(spec: TaskSpec, data_dir: str | Path | None = None, limit: int | None = None,
              protocol: Protocol | str = "paper") -> TaskData:
    """`load_items` with the data checks. A row whose fields do not have their schema's types
    (`medix.eval.rows`), or that the builder cannot turn into a question (an answer index outside the
    options), is skipped with a warning naming file, line, field and value; a task left with no row is
    unavailable. `limit` counts the rows read, so a smoke run looks at the same rows whatever is bad."""
    protocol = get_protocol(protocol)
    if spec.builder not in BUILDERS:
        raise MedixError(f"task {spec.name}: {BUILDERS.unknown(spec.builder)}")
    build_fn = BUILDERS[spec.builder]
    rows = _rows(spec, data_dir)
    kept = [rows.column(k) for k in spec.filter]
    lines = [n + 1 for n in range(len(rows)) if all(str(c[n]) == v for c, v in zip(kept, spec.filter.values()))]
    if not lines:  # nothing to ask: said here, not later as "no generations yet"
        source = rows.base / "test.jsonl" if rows.base is not None else spec.source_label
        raise TaskUnavailable(f"{source} has no rows" + (f" matching its filter {spec.filter}" if len(rows) else "")
                              + "; check the data")
    if limit is not None:
        lines = lines[:limit]
    archive = fetch_image_archive(spec) if spec.image_archive and data_dir is None else None
    roots = [r for r in (rows.base, archive) if r is not None]
    data = TaskData([], revision=rows.revision)
    where_ = "" if rows.base is not None else f"{spec.source_label} "
    for item_id, line in zip(_ids(spec, rows, lines), lines):
        row, where = rows.row(line - 1), where_ + rows.where(line)
        bad = check_row(row, spec.builder, spec.columns)
        try:
            built = None if bad else build_fn(row, spec.columns, spec, protocol)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as err:
            data.bad_rows.append(f"{where}: cannot build the question ({err.__class__.__name__}: {err})")
            continue
        if built is None:
            data.bad_rows.append(f"{where}: " + "; ".join(b.describe() for b in bad))
            continue
        for flag in built.flags:
            data.flags[flag] = data.flags.get(flag, 0) + 1
        data.items.append(_item(spec, row, rows, roots, item_id, len(data.items), built))
    for message in data.bad_rows[:5]:
        log.warning("task %s: row skipped: %s", spec.name, message)
    if len(data.bad_rows) > 5:
        log.warning("task %s: %d rows skipped in all (scores.json lists the first 5)", spec.name, len(data.bad_rows))
    if lines and not data.items:
        raise TaskUnavailable(f"every one of its {len(lines)} rows is bad, e.g. {data.bad_rows[0]}; check the data "
                              "and the columns in its YAML")
    return data


def _item(spec: TaskSpec, row: dict, rows: Rows, roots: list[Path], item_id: str, index: int,
          built: Built) -> EvalItem:
    image_col = spec.columns.get("image")
    images = _archive_image(spec, row, roots)  # an archive name wins, as in the official loader
    if not images and image_col:
        images = _image_paths(row.get(image_col), rows, spec.name, item_id)
    meta = {k: row.get(k) for k in spec.breakdowns if row.get(k) is not None}
    meta.update({flag: True for flag in built.flags})
    if (image_col or spec.image_archive) and not images:
        meta["image_missing"], meta["image_missing_reason"] = True, _missing_reason(spec, row, roots)
    answer_idx = row.get("answer_idx")
    return EvalItem(id=item_id, task=spec.name, question=built.question, reference=built.reference,
                    choices=built.choices, images=images, meta=meta, index=index,
                    answer_idx=None if answer_idx is None else str(answer_idx), data_revision=rows.revision)
