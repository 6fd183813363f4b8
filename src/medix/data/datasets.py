"""Training/eval samples: `{id, images, problem, solution}` as in MBZUAI/medix-rl-data.

Sources:
    load_samples("MBZUAI/medix-rl-data@train")          # hub `name@split` (needs the hub)
    load_samples("data/train.jsonl")                     # local .jsonl / .json / .parquet
Image paths in local files are relative to the file. Every problem is reported with file, row and field.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from PIL import Image

from medix.data.modality import MODALITY_TAGS, split_solution
from medix.errors import MedixError, where
from medix.files import iter_jsonl, read_json

log = logging.getLogger(__name__)
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


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


def _images(value: Any, base: Path, loc: str, check: bool) -> list[Any]:
    """Normalise the image column (None, a path, a list of paths, HF {'bytes','path'} dicts, PIL)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("bytes"):
            out.append(Image.open(io.BytesIO(item["bytes"])))
            continue
        if isinstance(item, dict):
            item = item.get("path")
        if isinstance(item, Image.Image):
            out.append(item)
            continue
        if not isinstance(item, str) or not item:
            raise MedixError(f"{loc}: image entry must be a path, got {item!r}")
        path = Path(item) if Path(item).is_absolute() else base / item
        if check:
            try:
                with Image.open(path) as img:
                    img.verify()
            except (OSError, SyntaxError) as err:
                raise MedixError(f"{loc}: unreadable image {path} ({err.__class__.__name__}: {err})") from None
        out.append(str(path))
    return out


def to_sample(record: dict, row: int, source: str, base: Path, check_images: bool = True) -> Sample:
    """Validate one record; raise MedixError naming the source, row and field."""
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
    images = _images(image_value, base, where(source, row, "image"), check_images)
    return Sample(id=str(record.get("id", f"{Path(source).stem}-{row}")), problem=record["problem"],
                  solution=record["solution"], images=images)


def load_samples(
    source: str | Path,
    limit: int | None = None,
    on_invalid: Literal["error", "skip"] = "error",
    check_images: bool = True,
) -> list[Sample]:
    """Load and validate samples from a local file or a hub `name@split`.

    on_invalid="skip" drops bad rows (logging each, then a count) instead of stopping.
    """
    path = Path(source)
    if path.suffix.lower() in LOCAL_SUFFIXES or path.exists():
        records, base = read_records(path), path.parent
    else:
        records, base = _hub_records(str(source)), Path(".")
    samples, skipped = [], 0
    for row, record in enumerate(records, 1):
        try:
            samples.append(to_sample(record, row, str(source), base, check_images))
        except MedixError as err:
            if on_invalid == "error":
                raise
            skipped += 1
            log.warning("skipping %s", err)
        if limit is not None and len(samples) >= limit:
            break
    if skipped:
        log.warning("%s: skipped %d invalid row(s), kept %d", source, skipped, len(samples))
    if not samples:
        raise MedixError(f"{source}: no usable rows (empty dataset)")
    return samples


def _hub_records(spec: str) -> Iterable[dict]:
    """`name@split` or `name:config@split` from the Hugging Face hub."""
    import datasets

    name, _, split = spec.partition("@")
    name, _, config = name.partition(":")
    if not split:
        raise MedixError(f"hub dataset '{spec}': add the split, e.g. '{name}@train' (or give a local .jsonl path)")
    try:
        return datasets.load_dataset(name, config or None, split=split)
    except Exception as err:  # noqa: BLE001 — datasets raises many types for "cannot reach / no such dataset"
        raise MedixError(
            f"cannot load hub dataset '{spec}' ({err.__class__.__name__}: {str(err)[:200]}). "
            "Offline? Use a local .jsonl/.json/.parquet file instead."
        ) from None
