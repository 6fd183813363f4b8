"""Dataset rows → EvalItems, built as the paper does; local mirrors or the hub.

    items = load_items(registry()["medqa"], data_dir="/data/benchmarks", limit=10)

The question and reference come from the task's shape (`shape:` in its YAML; `medix.eval.shapes.SHAPES`),
which reads its columns through the task's `columns` mapping, so a new benchmark of a known shape needs only
a YAML file, and a new shape only a module in `medix/eval/shapes/`.
Local mirrors: `DATA_DIR/<task>/test.jsonl` with the hub's column names, image paths relative to the
task folder. A task without data raises `TaskUnavailable` with the reason (the run lists it as skipped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from medix.data.datasets import read_records
from medix.errors import MedixError
from medix.eval.protocol import Protocol, get_protocol
from medix.eval.registry import TaskSpec
from medix.eval.rows import check_row
from medix.eval.records import EvalItem
from medix.eval.shapes import SHAPES, Built
from medix.files import cache_dir

log = logging.getLogger(__name__)


class TaskUnavailable(MedixError):
    """The task's data cannot be read here; the message is the reason shown in the skipped list."""


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
        sha, _ = hub.resolve_commit(archive["repo"], "dataset", revision)
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
    (`medix.eval.rows`), or that the shape cannot turn into a question (an answer index outside the
    options), is skipped with a warning naming file, line, field and value; a task left with no row is
    unavailable. `limit` counts the rows read, so a smoke run looks at the same rows whatever is bad."""
    protocol = get_protocol(protocol)
    if spec.shape not in SHAPES:
        raise MedixError(f"task {spec.name}: {SHAPES.unknown(spec.shape)}")
    shape = SHAPES[spec.shape]
    layout = shape.layout(protocol)  # a protocol the shape has no layout for is refused before any row is read
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
        bad = check_row(row, shape.schema, spec.columns)
        try:
            built = None if bad else shape.build(row, spec.columns, spec, protocol, layout)
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
