"""Reading input files and checking output paths, with errors that name the file and line.

    for line_no, record in iter_jsonl(path): ...      # JSONL rows (blank lines skipped)
    data = read_json(path); text = read_text(path)    # whole files
    check_output_file(out, overwrite=False, inputs=[inp])   # before any model loads
    check_writable_dir(folder); check_output_dir(folder)     # a folder output (never an existing file)
    cache_dir()                                        # MEDIX_CACHE (default ~/.cache/medix)

Every reader turns the two ways a file can be unreadable as text into a `MedixError` naming the file and
line (a JSONL line is a "row", as in every other data error): bytes that are not UTF-8
(`UnicodeDecodeError`) and text that is not JSON (`JSONDecodeError`).

One run per output folder is `medix.claims.hold_folder`; keeping secrets out of what medix writes is
`medix.safe_text`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from medix.errors import MedixError, where


def cache_dir() -> Path:
    """Where medix keeps converted models, audits and judge caches: MEDIX_CACHE, else ~/.cache/medix."""
    return Path(os.environ.get("MEDIX_CACHE", Path.home() / ".cache" / "medix"))


def _decode(data: bytes, path: Path, first_line: int = 1, unit: str = "line") -> str:
    """UTF-8 text of `data` (which starts at line `first_line` of `path`); errors say `unit` N ("row" in JSONL)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data.count(b"\n", 0, err.start)
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise MedixError(f"{path}, {unit} {line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}); "
                         "save the file as UTF-8") from None


def read_text(path: str | Path) -> str:
    """The whole file as UTF-8 text."""
    path = Path(path)
    return _decode(path.read_bytes(), path)


def read_json(path: str | Path) -> Any:
    """A whole JSON file; a syntax error names the line."""
    path = Path(path)
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise MedixError(f"{path}, line {err.lineno}: not valid JSON ({err.msg}, column {err.colno})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed value) for each non-blank line of a JSONL file; errors name it "row N"."""
    path = Path(path)
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            line = _decode(raw, path, line_no, unit="row")
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as err:
                raise MedixError(f"{where(path, line_no)}: not valid JSON ({err.msg}, column {err.colno})") from None


def check_output_file(path: str | Path, overwrite: bool = False, inputs: tuple | list = ()) -> None:
    """Refuse an output path that cannot or must not be written, before any work starts: a directory, one of
    the `inputs`, an existing file (unless `overwrite`), or a place this process cannot create files in."""
    path = Path(path)
    if path.is_dir():
        raise MedixError(f"output {path} is a directory; give a file path, e.g. {path / 'scored.jsonl'}")
    for source in inputs:
        if Path(source).exists() and path.exists() and os.path.samefile(source, path):
            raise MedixError(f"output {path} is the input file; writing it would destroy the input. "
                             "Choose another output path")
    if path.exists() and not path.is_file():
        raise MedixError(f"output {path} is not a regular file (a device, pipe or socket); give a file path")
    if path.exists() and not overwrite:
        raise MedixError(f"output {path} already exists; pass --overwrite to replace it, or choose another path")
    check_writable_dir(path.parent, f"cannot write {path}")


def check_writable_dir(folder: str | Path, context: str | None = None) -> None:
    """MedixError unless files can be created in `folder` (or, when it does not exist yet, in the nearest
    folder above it that does, where the missing ones will be made)."""
    folder = Path(folder)
    context = context or f"cannot write to {folder}"
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise MedixError(f"{context}: {folder} is not a directory")
    try:  # a real probe: permission bits say nothing for root, a read-only mount says nothing in them
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise MedixError(f"{context}: {folder} is not writable ({err.strerror})") from None


def check_output_dir(folder: str | Path, flag: str = "--output-dir") -> None:
    """MedixError unless `folder` is (or can become) a writable folder: an existing file is refused."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise MedixError(f"{flag} {folder} is a file; give a folder (it is created when missing)")
    check_writable_dir(folder, f"{flag} {folder} cannot be written")
