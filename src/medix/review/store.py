"""One review set = one SQLite file (standard library `sqlite3`, WAL journal): items, settings, the hidden
mapping, the reviews.

    store = ReviewStore.create("review.sqlite", settings, runs, items)   # medix review create
    store = ReviewStore.open("review.sqlite")                             # a schema of another version is refused
    with store.serving("127.0.0.1:7861"): ...                             # one server per set: a second is refused
    item = store.next_item("dr-1")         # the next item this reviewer has not reviewed, held for them a while
    store.submit(item.key, "dr-1", "A", "")                               # committed before it returns

What a crash can lose: a review is one `INSERT` committed (synchronous=FULL) before the page is told it was
recorded, so a SIGKILL, Ctrl-C or a closed browser loses at most the item on screen; its lease runs out and the
item goes back to the pool. Concurrency: every call opens its own connection and writes inside `BEGIN
IMMEDIATE` (one writer at a time, others wait `BUSY_TIMEOUT_S`); `UNIQUE(item, reviewer)` makes a double
submission a no-op told "already recorded". Copying: the server checkpoints the WAL into the main file after
every review, so `cp` of the file gives every review committed before the last checkpoint; `backup()` (SQLite's
online backup, `medix review backup`) gives a consistent copy at any moment.

Blinding: the tables `runs` and `hidden` (which run each answer came from) are read by the report only; the page
reads `items`, whose columns say nothing about a model.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import medix
from medix.claims import hold_lock
from medix.errors import MedixError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
KINDS = {  # the set's kind → the choices a reviewer can make, in the order the page shows them
    "pairwise": ("A", "B", "tie", "both_wrong"),
    "grading": ("correct", "partial", "incorrect"),
}
REVIEWER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (slot INTEGER PRIMARY KEY, model TEXT NOT NULL, path TEXT NOT NULL, generator TEXT NOT NULL,
                   judge_key TEXT, judge TEXT);
CREATE TABLE items (key INTEGER PRIMARY KEY, task TEXT NOT NULL, item_id TEXT NOT NULL, modality TEXT NOT NULL,
                    answer_type TEXT NOT NULL, question TEXT NOT NULL, reference TEXT NOT NULL, image BLOB,
                    answer_a TEXT NOT NULL, reasoning_a TEXT, answer_b TEXT, reasoning_b TEXT,
                    UNIQUE (task, item_id));
CREATE TABLE hidden (item INTEGER PRIMARY KEY REFERENCES items (key), slot_a INTEGER NOT NULL, slot_b INTEGER,
                     verdict_a REAL, verdict_b REAL, judge_kind TEXT);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, item INTEGER NOT NULL REFERENCES items (key), reviewer TEXT NOT NULL,
                      choice TEXT NOT NULL, comment TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
                      UNIQUE (item, reviewer));
CREATE TABLE leases (item INTEGER NOT NULL, reviewer TEXT NOT NULL, until REAL NOT NULL, PRIMARY KEY (item, reviewer));
"""


@dataclass(frozen=True)
class Settings:
    kind: str  # "pairwise" or "grading"
    k: int = 2  # reviewers per item
    show_reference: bool = True
    lease_s: float = 600.0  # how long an item on screen is held for its reviewer before others may take it
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise MedixError(f"review kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if self.k < 1:
            raise MedixError(f"--k {self.k}: each item needs at least one reviewer")
        if self.lease_s <= 0:
            raise MedixError(f"lease {self.lease_s}: must be above 0 seconds")


@dataclass(frozen=True)
class Item:
    """What the page shows: nothing here names a model or a run."""
    key: int
    task: str
    item_id: str
    modality: str
    answer_type: str
    question: str
    reference: str
    image: bytes | None
    answer_a: str
    reasoning_a: str | None
    answer_b: str | None
    reasoning_b: str | None


_ITEM_COLUMNS = ("key, task, item_id, modality, answer_type, question, reference, image, answer_a, reasoning_a, "
                 "answer_b, reasoning_b")


def check_reviewer(reviewer: str) -> str:
    reviewer = (reviewer or "").strip()
    if not REVIEWER_ID.fullmatch(reviewer):
        raise MedixError(f"reviewer ID {reviewer[:80]!r}: use 1-64 letters, digits, '.', '_' or '-' (a pseudonym such "
                         "as dr-07; never a name or an e-mail address)")
    return reviewer


class ReviewStore:
    """A review set's SQLite file. Methods open a short-lived connection each, so one store serves many threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ---- creating and opening -------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, settings: Settings, runs: list[dict], items: list[dict]) -> "ReviewStore":
        """Write a new set (items: `Item` fields but `key`, plus `slot_a`, `slot_b`, `verdict_a`, `verdict_b`,
        `judge_kind`) into a temporary file, then rename it into place: a failed create leaves nothing."""
        path = Path(path)
        tmp = path.with_name(path.name + ".partial")
        tmp.unlink(missing_ok=True)
        with contextlib.closing(sqlite3.connect(tmp)) as db:
            db.executescript(_SCHEMA)
            meta = {"schema_version": SCHEMA_VERSION, "medix_version": medix.__version__, "kind": settings.kind,
                    "k": settings.k, "show_reference": int(settings.show_reference), "lease_s": settings.lease_s,
                    "seed": settings.seed, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
            db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                           [(r["slot"], r["model"], r["path"], json.dumps(r["generator"]), r.get("judge_key"),
                             json.dumps(r.get("judge"))) for r in runs])
            for key, item in enumerate(items, 1):
                db.execute(f"INSERT INTO items ({_ITEM_COLUMNS}) VALUES ({', '.join('?' * 12)})",
                           (key, *(item[c] for c in _ITEM_COLUMNS.split(", ")[1:])))
                db.execute("INSERT INTO hidden VALUES (?, ?, ?, ?, ?, ?)",
                           (key, item["slot_a"], item.get("slot_b"), item.get("verdict_a"), item.get("verdict_b"),
                            item.get("judge_kind")))
            db.commit()
            db.execute("PRAGMA journal_mode=WAL")  # stays set in the file for every later connection
        os.replace(tmp, path)
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> "ReviewStore":
        """An existing set, checked: a file that is not a review set, or one of another schema version, is refused."""
        path = Path(path)
        if not path.is_file():
            raise MedixError(f"review set {path} does not exist; build one with `medix review create`")
        store = cls(path)
        try:
            meta = store.meta()
        except sqlite3.DatabaseError as err:
            raise MedixError(f"{path} is not a medix review set ({err}); "
                             "build one with `medix review create`") from None
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise MedixError(f"{path} is a review set of schema version {version} (built by medix "
                             f"{meta.get('medix_version')}); this medix {medix.__version__} reads version "
                             f"{SCHEMA_VERSION}. Serve and report it with the medix that built it, or build the set "
                             "again")
        return store

    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            if write:
                db.execute("BEGIN IMMEDIATE")  # the write lock first, so a read-then-write cannot race another
            yield db
            if write:
                db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def meta(self) -> dict:
        with self.connect() as db:
            try:
                rows = db.execute("SELECT key, value FROM meta").fetchall()
            except sqlite3.OperationalError as err:
                raise sqlite3.DatabaseError(str(err)) from None
        return {k: json.loads(v) for k, v in rows}

    def settings(self) -> Settings:
        meta = self.meta()
        return Settings(meta["kind"], int(meta["k"]), bool(meta["show_reference"]), float(meta["lease_s"]),
                        int(meta["seed"]))

    # ---- the one server -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def serving(self, address: str) -> Iterator[None]:
        """Hold `<set>.lock` (an flock, released by the kernel however the server dies) while serving; a second
        server on the same set is refused with the first one's pid, host and address."""
        lock = self.path.with_name(self.path.name + ".lock")
        with hold_lock(lock, f"serving at {address}", lambda holder: (
                f"{self.path} is already served by {holder}; send reviewers there, or stop it first "
                "(two servers on one set would hand the same items out twice)")):
            yield

    # ---- reviewing ------------------------------------------------------------------------------------------
    def next_item(self, reviewer: str, now: float | None = None) -> Item | None:
        """The item to show `reviewer`: the one they hold (a reload resumes it), else the first they have not
        reviewed whose reviews plus others' live leases are below k, now held for them `lease_s`. None when
        nothing is left for them (done, or the rest is on other reviewers' screens)."""
        reviewer = check_reviewer(reviewer)
        now = time.time() if now is None else now
        settings = self.settings()
        with self.connect(write=True) as db:
            db.execute("DELETE FROM leases WHERE until < ?", (now,))
            row = db.execute("SELECT item FROM leases WHERE reviewer = ? AND item NOT IN "
                             "(SELECT item FROM reviews WHERE reviewer = ?) ORDER BY item LIMIT 1",
                             (reviewer, reviewer)).fetchone()
            if row is None:
                row = db.execute(
                    "SELECT key FROM items WHERE key NOT IN (SELECT item FROM reviews WHERE reviewer = ?) "
                    "AND (SELECT COUNT(*) FROM reviews WHERE item = key) + "
                    "(SELECT COUNT(*) FROM leases WHERE item = key AND reviewer != ?) < ? ORDER BY key LIMIT 1",
                    (reviewer, reviewer, settings.k)).fetchone()
            if row is None:
                return None
            db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", (row[0], reviewer, now + settings.lease_s))
            return Item(*db.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE key = ?", row).fetchone())

    def submit(self, item: int, reviewer: str, choice: str, comment: str = "") -> bool:
        """Record one review, committed before this returns; False when this reviewer already reviewed the item
        (nothing is written twice). A review is kept even past k (a lease that ran out): none is ever dropped."""
        reviewer = check_reviewer(reviewer)
        choices = KINDS[self.settings().kind]
        if choice not in choices:
            raise MedixError(f"choice {choice!r}: expected one of {', '.join(choices)}")
        with self.connect(write=True) as db:
            if db.execute("SELECT 1 FROM items WHERE key = ?", (item,)).fetchone() is None:
                raise MedixError(f"{self.path}: no item {item}")
            try:
                db.execute("INSERT INTO reviews (item, reviewer, choice, comment, created) VALUES (?, ?, ?, ?, ?)",
                           (item, reviewer, choice, (comment or "").strip()[:4000], time.time()))
                new = True
            except sqlite3.IntegrityError:
                new = False
            db.execute("DELETE FROM leases WHERE item = ? AND reviewer = ?", (item, reviewer))
        with self.connect() as db:  # the WAL into the main file, so a plain copy of the file holds this review
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return new

    def release(self, item: int, reviewer: str) -> None:
        """Give an item back (the reviewer skipped it)."""
        with self.connect(write=True) as db:
            db.execute("DELETE FROM leases WHERE item = ? AND reviewer = ?", (item, check_reviewer(reviewer)))

    def progress(self, reviewer: str | None = None) -> dict:
        """{items, k, reviews, complete (items with k reviews), mine (this reviewer's reviews)}."""
        settings = self.settings()
        with self.connect() as db:
            items = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            reviews = db.execute("SELECT COUNT(*) FROM reviews").fetchone()[0]
            complete = db.execute("SELECT COUNT(*) FROM (SELECT item FROM reviews GROUP BY item HAVING COUNT(*) >= ?)",
                                  (settings.k,)).fetchone()[0]
            mine = db.execute("SELECT COUNT(*) FROM reviews WHERE reviewer = ?", (reviewer or "",)).fetchone()[0]
        return {"items": items, "k": settings.k, "reviews": reviews, "complete": complete, "mine": mine}

    # ---- reading for the report (unblinded) -----------------------------------------------------------------
    def rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self.connect() as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, args).fetchall()

    def backup(self, target: str | Path) -> None:
        """A consistent copy of the set while it is being served (SQLite's online backup)."""
        with self.connect() as db, contextlib.closing(sqlite3.connect(target)) as out:
            db.backup(out)
