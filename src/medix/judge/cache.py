"""Verdict cache: SQLite, keyed by sha256 of (judge identity, rendered prompt).

The identity holds the model, backend, sampling parameters and the template hash, so changing any of
them never reuses an old verdict. The decision settings (`threshold`, `soft`) are left out of the key: they
act on the stored P(YES) after the verdict (`Judge.decide`), so a new threshold re-decides cached verdicts
without asking the judge again. Only successful verdicts are stored; failures are retried next time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from medix.judge.types import IDENTITY_NOTES


DECISIONS = ("threshold", "soft")  # applied to the cached P(YES), not to what the judge is asked


def cache_key(identity: dict, prompt: str) -> str:
    """The identity's settings (not its notes, e.g. `p_yes: unavailable`, nor its decision settings) and the
    prompt, hashed."""
    return cache_keys(identity, [prompt])[0]


def cache_keys(identity: dict, prompts: list[str]) -> list[str]:
    """`cache_key` of every prompt, the identity serialised once: the bytes hashed are those of
    `json.dumps([settings, prompt], sort_keys=True, ensure_ascii=False)`, so stored verdicts stay valid."""
    settings = {k: v for k, v in identity.items() if k not in IDENTITY_NOTES and k not in DECISIONS}
    head = "[" + json.dumps(settings, sort_keys=True, ensure_ascii=False) + ", "
    return [hashlib.sha256((head + json.dumps(p, ensure_ascii=False) + "]").encode("utf-8")).hexdigest()
            for p in prompts]


class VerdictCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used only from the judge's own event-loop thread.
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # v2 adds P(YES), from which `Judge.decide` reads the verdict at any threshold.
        self._db.execute("CREATE TABLE IF NOT EXISTS verdicts_v2 "
                         "(key TEXT PRIMARY KEY, score REAL, raw TEXT, p_yes REAL)")

    def get_many(self, keys: list[str]) -> dict[str, tuple[float, str, float | None]]:
        found: dict[str, tuple[float, str, float | None]] = {}
        for start in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, score, raw, p_yes FROM verdicts_v2 WHERE key IN ({marks})"
            for key, score, raw, p_yes in self._db.execute(query, chunk):
                found[key] = (score, raw, p_yes)
        return found

    def put_many(self, items: list[tuple[str, float, str, float | None]]) -> None:
        if items:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO verdicts_v2 VALUES (?, ?, ?, ?)", items)

    def close(self) -> None:
        self._db.close()
