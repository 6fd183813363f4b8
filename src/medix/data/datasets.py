"""Training/eval rows `{id, images, problem, solution}` as in MBZUAI/medix-rl-data, validated and kept lazy.

    rows = load_rows("data/train.jsonl")                 # local .jsonl / .json / .parquet
    rows = load_rows("MBZUAI/medix-rl-data@train")       # hub `name@split` (needs the hub)
    samples = load_samples("data/test.jsonl")            # the same rows as Python objects (small files only)

`load_rows` returns a `datasets.Dataset`: Arrow on disk, memory-mapped, cached by fingerprint (a second call
on the same unchanged file reads the cache). Images stay as paths or encoded bytes (`Image(decode=False)`)
and are decoded only when a row is read with decoding on. Image paths in local files are relative to the
file. Every problem is reported with file, row and field.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal

from PIL import Image

from medix.data.response import MODALITY_TAGS, split_solution
from medix.errors import MedixError, where
from medix.files import iter_jsonl, read_json

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
ROWS_VERSION = "rows-1"  # part of every cache fingerprint: bump when the validation rules change
OnInvalid = Literal["error", "skip"]
# Rows held in memory before datasets writes them to Arrow (its default, 1000, is ~70 MB of image bytes).
WRITER_BATCH_ROWS = 100


@dataclass
class Sample:
    id: str
    problem: str
    solution: str  # "<TAG> answer"; the tag may be absent for text-only data
    images: list[Any] = field(default_factory=list)  # paths (str) or PIL images

    @property
    def modality(self) -> str | None:
        return split_solution(self.solution)[0]

    @property
    def answer(self) -> str:
        return split_solution(self.solution)[1]

    @classmethod
    def from_row(cls, row: dict) -> "Sample":
        """A `load_rows` row → Sample: a path image stays a path, an encoded one is opened (lazily, by PIL)."""
        images = [Image.open(io.BytesIO(i["bytes"])) if i.get("bytes") else i["path"] for i in row["images"]]
        return cls(id=row["id"], problem=row["problem"], solution=row["solution"], images=images)


def row_features(decode_images: bool = False) -> "datasets.Features":
    """The schema of `load_rows`. images: {bytes, path} structs, decoded to PIL on access only when
    `decode_images`; image_sizes: (height, width) of each image from its header (read when images are
    checked, else null); error: set on a row that failed validation (on_invalid=skip keeps it until the
    report, then drops it)."""
    from datasets import Features, Image as ImageFeature, List, Value

    text = Value("string")
    return Features({"id": text, "problem": text, "solution": text,
                     "images": List(ImageFeature(decode=decode_images)), "image_sizes": List(List(Value("int64"))),
                     "error": text})


def read_records(path: Path) -> Iterable[dict]:
    """Rows of a local .jsonl / .json / .parquet file as dicts (1-based row numbers in errors)."""
    if not path.is_file():
        raise MedixError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for row, record in iter_jsonl(path):
            if not isinstance(record, dict):
                raise MedixError(f"{where(path, row)}: expected a JSON object, got {type(record).__name__}")
            yield record
    elif suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list):
            raise MedixError(f"{path}: expected a JSON list of objects")
        for row, record in enumerate(data, 1):
            if not isinstance(record, dict):
                raise MedixError(f"{where(path, row)}: expected a JSON object, got {type(record).__name__}")
            yield record
    elif suffix == ".parquet":
        import datasets

        yield from datasets.Dataset.from_parquet(str(path))
    else:
        raise MedixError(f"{path}: unsupported file type '{suffix}' (use one of {', '.join(LOCAL_SUFFIXES)})")


def _check_image(source: Any, loc: str, name: object) -> list[int]:
    """[height, width] from the header; fail with the row's location when PIL cannot read the file's header
    and structure (no pixel decode)."""
    try:
        with Image.open(source) as img:
            size = [img.height, img.width]
            img.verify()
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise MedixError(f"{loc}: unreadable image {name} ({err.__class__.__name__}: {err})") from None
    return size


def _images(value: Any, base: Path, loc: str, check: bool) -> tuple[list[dict], list[list[int]] | None]:
    """The image column (None, a path, a list of paths, HF {'bytes','path'} dicts, PIL) → {bytes, path}
    dicts, and with `check` their [height, width]."""
    if value is None:
        return [], [] if check else None
    out, sizes = [], []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, Image.Image):  # an already decoded image (in-memory data): store it encoded
            from datasets import Image as ImageFeature

            item = ImageFeature().encode_example(item)
        if isinstance(item, dict) and item.get("bytes"):
            if check:
                sizes.append(_check_image(io.BytesIO(item["bytes"]), loc, "(embedded bytes)"))
            out.append({"bytes": item["bytes"], "path": item.get("path")})
            continue
        if isinstance(item, dict):
            item = item.get("path")
        if not isinstance(item, str) or not item:
            raise MedixError(f"{loc}: image entry must be a path, got {item!r}")
        path = Path(item) if Path(item).is_absolute() else base / item
        if check:
            sizes.append(_check_image(path, loc, path))
        out.append({"bytes": None, "path": str(path)})
    return out, sizes if check else None


def to_row(record: dict, row: int, source: str, base: Path, check_images: bool = True) -> dict:
    """Validate one record into a row of `row_features()`; raise MedixError naming the source, row and field."""
    if not isinstance(record, dict):
        raise MedixError(f"{where(source, row)}: expected an object with 'problem' and 'solution', "
                         f"got {type(record).__name__}")
    for name in ("problem", "solution"):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            raise MedixError(f"{where(source, row, name)}: missing or empty (every row needs 'problem' and 'solution')")
    _, answer, unknown = split_solution(record["solution"])
    if unknown is not None:
        raise MedixError(
            f"{where(source, row, 'solution')}: unknown modality tag <{unknown}> (valid: {', '.join(MODALITY_TAGS)})"
        )
    if not answer:
        raise MedixError(f"{where(source, row, 'solution')}: has a tag but no answer text")
    image_value = record.get("images", record.get("image"))
    images, sizes = _images(image_value, base, where(source, row, "image"), check_images)
    row_id = record.get("id")
    return {"id": str(row_id if row_id is not None else f"{Path(source).stem}-{row}"), "problem": record["problem"],
            "solution": record["solution"], "images": images, "image_sizes": sizes, "error": None}


def _checked(record: dict, row: int, source: str, base: Path, check_images: bool, on_invalid: OnInvalid) -> dict:
    """`to_row`, or with on_invalid=skip an empty row that carries the error message."""
    try:
        return to_row(record, row, source, base, check_images)
    except MedixError as err:
        if on_invalid == "error":
            raise
        return {"id": None, "problem": None, "solution": None, "images": [], "image_sizes": None, "error": str(err)}


def load_rows(source: str | Path, limit: int | None = None, on_invalid: OnInvalid = "error",
              check_images: bool = True, num_proc: int | None = None,
              decode_images: bool = False, revision: str | None = None) -> "datasets.Dataset":
    """Validated rows of a local file or a hub `name@split` (at `revision`: a branch, tag or commit; None =
    main, resolved to its commit and recorded by `medix.hub`) as a memory-mapped `datasets.Dataset`.

    Columns: see `row_features` (images are paths and bytes in the table; `decode_images` only says whether
    reading a row turns them into PIL images). on_invalid="skip" drops bad rows (logging each, then a count)
    instead of stopping; `limit` keeps the first N valid rows; `num_proc` validates a hub dataset in that
    many processes (local files are streamed once, in one).
    """
    from datasets.exceptions import DatasetGenerationError

    path, name = Path(source), str(source)
    options = {"limit": limit, "on_invalid": on_invalid, "check_images": check_images, "decode_images": decode_images}
    try:
        if path.suffix.lower() in LOCAL_SUFFIXES or path.exists():
            rows = _local_rows(path, **options)
        else:
            rows = _arrow_rows(_hub_dataset(name, revision), name, Path("."), num_proc=num_proc, **options)
    except DatasetGenerationError as err:  # an error raised inside datasets' generator: show the cause
        if isinstance(err.__cause__, MedixError):
            raise err.__cause__ from None
        raise
    return _drop_invalid(rows, name)


def load_samples(source: str | Path, limit: int | None = None, on_invalid: OnInvalid = "error",
                 check_images: bool = True) -> list[Sample]:
    """`load_rows` as a list of Samples, for callers that need Python objects (evaluation-sized files)."""
    return [Sample.from_row(row) for row in load_rows(source, limit, on_invalid, check_images)]


def _local_rows(path: Path, limit, on_invalid, check_images, decode_images) -> "datasets.Dataset":
    """A local file streamed once through validation into an Arrow file (plain reads, no memory-mapped
    input); the fingerprint follows the file's identity and modification, so an edited file is read again
    and an unchanged one comes from the cache."""
    import datasets
    from datasets.fingerprint import Hasher

    if not path.is_file():
        raise MedixError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in LOCAL_SUFFIXES:
        raise MedixError(f"{path}: unsupported file type '{suffix}' (use one of {', '.join(LOCAL_SUFFIXES)})")
    if next(iter(_file_records(path)), None) is None:  # datasets cannot build a table from no rows
        raise MedixError(f"{path}: no usable rows (empty dataset)")
    stat = path.stat()
    kwargs = {"path": str(path), "on_invalid": on_invalid, "check_images": check_images, "limit": limit}
    fingerprint = Hasher.hash([ROWS_VERSION, str(path.resolve()), stat.st_mtime_ns, stat.st_size, decode_images,
                               kwargs])
    return datasets.Dataset.from_generator(_file_rows, features=row_features(decode_images), gen_kwargs=kwargs,
                                           fingerprint=fingerprint, writer_batch_size=WRITER_BATCH_ROWS)


def _file_records(path: Path) -> Iterable[dict]:
    """`read_records`, with parquet read in batches of rows straight from the file (images stay encoded)."""
    if path.suffix.lower() != ".parquet":
        yield from read_records(path)
        return
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as file:
        groups = file.num_row_groups
    for group in range(groups):
        # A fresh reader per row group: one reader over the whole file keeps buffers of the groups it has read
        # (pyarrow 26: its allocations went from 25 MB after 2k rows of images to 97 MB after 8k), so memory
        # would grow with the file; per row group it stays flat.
        with pq.ParquetFile(path) as file:
            for batch in file.iter_batches(batch_size=64, row_groups=[group], use_threads=False):
                yield from batch.to_pylist()


def _file_rows(path: str, on_invalid: OnInvalid, check_images: bool, limit: int | None) -> Iterable[dict]:
    """Generator for `Dataset.from_generator`: one validated row per record of a local file."""
    kept = 0
    for row, record in enumerate(_file_records(Path(path)), 1):
        out = _checked(record, row, path, Path(path).parent, check_images, on_invalid)
        kept += out["error"] is None
        yield out
        if limit is not None and kept >= limit:
            return


def _validate_batch(batch: dict, indices: list[int], source: str, base: Path, check_images: bool,
                    on_invalid: OnInvalid, offset: int = 0) -> dict:
    """`Dataset.map` function over an Arrow source: the raw batch → rows of `row_features()` (row numbers in
    messages are 1-based and count from the start of the source, `offset` rows before this window)."""
    names = list(batch)
    rows = [_checked({k: batch[k][i] for k in names}, offset + index + 1, source, base, check_images, on_invalid)
            for i, index in enumerate(indices)]
    return {k: [r[k] for r in rows] for k in row_features()}


def _arrow_rows(table: "datasets.Dataset", source: str, base: Path, limit, on_invalid, check_images,
                decode_images, num_proc) -> "datasets.Dataset":
    """Validate an Arrow source (a hub split) with `Dataset.map` (cached, `num_proc`); with `limit`, only as
    many leading windows of rows as it takes to find `limit` valid ones."""
    import datasets

    table = _undecoded(table)
    parts, kept, start = [], 0, 0
    while start < len(table) and (limit is None or kept < limit):
        stop = len(table) if limit is None else min(len(table), start + limit - kept)
        window = table if (start, stop) == (0, len(table)) else table.select(range(start, stop))
        kwargs = {"source": source, "base": base, "check_images": check_images, "on_invalid": on_invalid,
                  "offset": start}
        part = window.map(_validate_batch, batched=True, batch_size=WRITER_BATCH_ROWS,
                          writer_batch_size=WRITER_BATCH_ROWS, with_indices=True, fn_kwargs=kwargs,
                          remove_columns=window.column_names, features=row_features(decode_images),
                          num_proc=num_proc if num_proc and len(window) >= 2 * num_proc else None,
                          desc=f"validating {source}")
        parts.append(part)
        kept += len(part) - sum(e is not None for e in part["error"])
        start = stop
    if not parts:
        features = row_features(decode_images)
        return datasets.Dataset.from_dict({k: [] for k in features}, features=features)
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _undecoded(table: "datasets.Dataset") -> "datasets.Dataset":
    """The same table with every Image feature set to decode=False (a schema change: no data is read)."""
    from datasets import Features, Image as ImageFeature, LargeList, List

    def visit(feature):
        if isinstance(feature, ImageFeature):
            return ImageFeature(decode=False)
        if isinstance(feature, LargeList):
            return LargeList(visit(feature.feature))
        if isinstance(feature, List):
            return List(visit(feature.feature), length=feature.length)
        if isinstance(feature, dict):
            return {k: visit(v) for k, v in feature.items()}
        return feature

    features = Features({k: visit(v) for k, v in table.features.items()})
    return table if features == table.features else table.cast(features)


def _is_valid(errors: list) -> list[bool]:
    return [e is None for e in errors]


def _drop_invalid(rows: "datasets.Dataset", source: str) -> "datasets.Dataset":
    """Log and drop the rows that on_invalid=skip kept with their error; refuse an empty result."""
    errors = [e for e in rows["error"] if e is not None]
    for message in errors:
        log.warning("skipping %s", message)
    if errors:
        rows = rows.filter(_is_valid, input_columns="error", batched=True, desc="dropping invalid rows")
        log.warning("%s: skipped %d invalid row(s), kept %d", source, len(errors), len(rows))
    rows = rows.remove_columns("error")
    if not len(rows):
        raise MedixError(f"{source}: no usable rows (empty dataset)")
    return rows


def _hub_dataset(spec: str, revision: str | None = None) -> "datasets.Dataset":
    """`name@split` or `name:config@split` from the Hugging Face hub, read from one commit."""
    from medix import hub

    name, _, split = spec.partition("@")
    name, _, config = name.partition(":")
    if not split:
        raise MedixError(f"hub dataset '{spec}': add the split, e.g. '{name}@train' (or give a local .jsonl path)")
    data, _ = hub.load_dataset(name, config or None, split, revision,
                               local_fix="use a local .jsonl/.json/.parquet file instead")
    return data
