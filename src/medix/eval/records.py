"""The typed records the phases hand over, and the append-only JSONL files that hold them.

    OUT/run.json                               model, generation settings, tasks (checked on resume)
    OUT/generations/<task>.jsonl               GenerationRecord per item
    OUT/judgments/<judge key>/<task>.jsonl     JudgmentRecord per item, one folder per judge identity
    OUT/scores.json, scores.md, scores.png, report.html

Crash safety: a record is written as one line, then flushed and fsync'ed, so a SIGKILL leaves at most
one torn last line, which `JsonlStore` cuts off when it opens the file. A restart reads the ids already
present and skips them, so the same command finishes the run with no duplicates.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from medix.errors import MedixError
from medix.files import iter_jsonl
from medix.safe_text import valid_unicode

log = logging.getLogger(__name__)


class EvalItem(BaseModel):
    """One benchmark question, built from a dataset row by its task shape (medix.eval.shapes)."""

    id: str = Field(..., description="Unique within the task (the dataset's id column, or the row number).")
    task: str
    question: str = Field(..., description="What the model is asked (options / context included).")
    reference: str = Field(..., description="The reference answer the judge compares with.")
    choices: dict[str, str] | None = Field(None, description="Lettered options of MCQ items.")
    images: list[str] = Field(default_factory=list, description="Image file paths.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Breakdown columns (answer_type, modality, ...).")
    index: int = Field(0, description="Position in the task's rows in dataset order (after its filter), from 0: "
                       "the official submission id is <task>_<index>.")
    answer_idx: str | None = Field(None, description="The row's own answer_idx column, when it has one (USMLE-SA).")
    data_revision: str | None = Field(None, description="Commit SHA of the hub dataset the row was read from; None "
                                      "for a local mirror.")


class GenerationRecord(BaseModel):
    id: str
    task: str
    prompt_sha256: str = Field(..., description="sha256 of the system prompt, user prompt and image contents.")
    data_revision: str | None = Field(None, description="Commit SHA of the hub dataset the item came from; None "
                                      "for a local mirror.")
    generator: dict = Field(..., description="Model, backend and sampling parameters that produced `raw`.")
    question: str = Field(..., description="The item's question (copied, so later phases need no data).")
    reference: str = Field(..., description="The item's reference answer.")
    meta: dict[str, Any] = Field(default_factory=dict, description="The item's breakdown columns.")
    index: int = Field(0, description="The item's position in dataset order (see EvalItem.index).")
    answer_idx: str | None = None
    raw: str | None = Field(None, description="The model's whole response; None when generation failed.")
    modality: str | None = None
    reasoning: str | None = None
    answer: str | None = Field(None, description="Inside <answer>; None when the block is missing.")
    well_formed: bool = False
    error: str | None = Field(None, description="Why generation failed after its retries.")
    attempts: int = 0


Status = Literal["scored", "judge_failed", "no_response", "empty_answer"]


class JudgmentRecord(BaseModel):
    id: str
    task: str
    prompt_sha256: str = Field(..., description="Copied from the generation record judged.")
    data_revision: str | None = Field(None, description="Copied from the generation record judged.")
    judge: dict = Field(..., description="The judge identity (backend, model, method, template hash, rounds, ...).")
    kind: str = Field(..., description="'binary' or 'rubric'.")
    candidate: str = Field(..., description="What the judge saw: the answer with reasoning stripped.")
    reference: str
    score: float | None = Field(None, strict=True, ge=0, le=5,
                                description="binary 0/1 (majority) or rubric mean 0-5; None = failed.")
    normalized: float | None = Field(None, strict=True, ge=0, le=1,
                                     description="score in [0, 1]: binary as is, rubric / 5.")
    rounds: list[float] = Field(default_factory=list)
    raws: list[str] = Field(default_factory=list)
    parse_failures: int = 0
    error: str | None = None
    note: str | None = Field(None, description="e.g. 'empty answer: scored 0 without the judge'.")
    status: Status = Field("scored", description="scored (by the judge); judge_failed (score None); no_response "
                           "(generation failed, score None); empty_answer (0 without a judge call).")

    @model_validator(mode="before")
    @classmethod
    def _old_status(cls, data):
        """Records written before `status` existed get it, once, as they are read (`_status_of_old_record`);
        every reader after that uses the typed field."""
        if isinstance(data, dict) and "status" not in data:
            data = {**data, "status": _status_of_old_record(data)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "JudgmentRecord":
        """A hand-edited record must not reach a score: the verdict fits its kind and its normalised value."""
        if self.kind not in ("binary", "rubric"):
            raise ValueError(f"kind {self.kind!r} is neither 'binary' nor 'rubric'")
        top = 1.0 if self.kind == "binary" else 5.0
        if self.score is not None and self.score > top:
            raise ValueError(f"score {self.score} is above {top:g}, the most a {self.kind} verdict can be")
        expected = None if self.score is None else self.score / top
        if ((expected is None) != (self.normalized is None)
                or (expected is not None and abs(expected - self.normalized) > 1e-6)):
            raise ValueError(f"normalized {self.normalized} does not match score {self.score} ({self.kind}: "
                             f"score / {top:g})")
        return self


def _status_of_old_record(record: dict) -> Status:
    """The status of a record written before the field existed, from the only trace it left: its texts."""
    if (record.get("error") or "").startswith("no response"):
        return "no_response"
    if (record.get("note") or "").startswith("empty answer"):
        return "empty_answer"
    return "judge_failed" if record.get("score") is None else "scored"


def sha256(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes (the path itself when there is no such file)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return path


_EDITED = ("A records file is only appended to, so this line was edited or damaged: delete that line (the next "
           "run redoes its item) or move the file away")


class JsonlStore:
    """Append-only JSONL with torn-line repair; records are keyed by their `id`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._ids: set[str] | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()

    def _repair(self) -> None:
        """Cut a torn last line (a write killed half-way) so the next append starts on a fresh line."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        log.warning("%s: removing a torn last line (%d bytes) left by an interrupted run", self.path, len(data) - keep)
        with self.path.open("r+b") as fh:
            fh.truncate(keep)

    def read(self) -> list[dict]:
        """All records; the first record wins when an id repeats (it cannot, but never double-count)."""
        return [record for _, record in self._numbered()]

    def read_as(self, model: type[BaseModel]) -> list[dict]:
        """`read_models` as dicts (fields missing from old records get their defaults)."""
        return [record.model_dump() for record in self.read_models(model)]

    def read_models(self, model: type[BaseModel]) -> list:
        """Every record validated by `model`, the schema it was written with (types, ranges, a verdict
        consistent with its kind): an edited record is named by file, row and field, never scored."""
        out = []
        for line_no, record in self._numbered():
            try:
                out.append(model.model_validate(record))
            except ValidationError as err:
                first = err.errors()[0]
                field = ".".join(str(x) for x in first["loc"]) or "record"
                value = f" (value {first['input']!r})" if first["loc"] else ""
                raise MedixError(f"{self.path}, row {line_no}, field '{field}': {first['msg']}{value}. "
                                 f"{_EDITED}") from None
        return out

    def _numbered(self) -> list[tuple[int, dict]]:
        if not self.path.is_file():
            return []
        seen: dict[str, tuple[int, dict]] = {}
        try:
            for line_no, record in iter_jsonl(self.path):
                if not isinstance(record, dict) or "id" not in record:
                    raise MedixError(f"{self.path}, row {line_no}: not a record (no 'id')")
                seen.setdefault(str(record["id"]), (line_no, record))
        except MedixError as err:
            raise MedixError(f"{err}. {_EDITED}") from None
        return list(seen.values())

    def ids(self) -> set[str]:
        """The ids present; read from the file once, then kept up to date by `append` / `drop` (one run
        writes a folder at a time: `medix.claims.hold_folder`)."""
        if self._ids is None:
            self._ids = {r["id"] for r in self.read()}
        return set(self._ids)

    def append(self, records: Iterable[BaseModel | dict], sync: bool = True) -> int:
        """Write whole lines in one call and flush (enough for SIGKILL); `sync` also fsyncs (power loss)."""
        dicts = [r.model_dump() if isinstance(r, BaseModel) else r for r in records]
        lines = [valid_unicode(json.dumps(d, ensure_ascii=False)) + "\n" for d in dicts]
        if not lines:
            return 0
        if self._ids is not None:
            self._ids.update(d["id"] for d in dicts)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(lines))
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        return len(lines)

    def sync(self) -> None:
        if self.path.is_file():
            with self.path.open("a") as fh:
                os.fsync(fh.fileno())

    def drop(self, predicate: Callable[[dict], bool]) -> int:
        """Rewrite without the records matching `predicate` (atomic rename); returns how many went."""
        records = self.read()
        keep = [r for r in records if not predicate(r)]
        if len(keep) == len(records):
            return 0
        tmp = self.path.with_suffix(".tmp")
        text = "".join(valid_unicode(json.dumps(r, ensure_ascii=False)) + "\n" for r in keep)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
        self._ids = {r["id"] for r in keep}
        return len(records) - len(keep)


def generations_path(out: Path, task: str) -> Path:
    return out / "generations" / f"{task}.jsonl"


def judgments_path(out: Path, judge_key: str, task: str) -> Path:
    return out / "judgments" / judge_key / f"{task}.jsonl"


def data_checks_path(out: Path) -> Path:
    """OUT/data_checks.json: per task, the rows skipped as bad and the data notes counted at load."""
    return Path(out) / "data_checks.json"


def read_data_checks(out: Path) -> dict[str, dict]:
    file = data_checks_path(out)
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # rewritten by the next generate phase
    return data if isinstance(data, dict) else {}
