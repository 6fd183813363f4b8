"""Score a JSONL file of responses with the composite reward (`medix reward score`).

IN rows: `response`, `solution` ("<TAG> answer"), optional `id`, `problem`, `images`/`image`.
OUT rows: the input row plus overall, each table component (`table.COMPONENTS`), judge_error,
similarity, guard, answer and the judge identity — in input order, written chunk by chunk so an
interruption keeps what was already scored. `table` gives the terminal table's columns and rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from medix.data.datasets import read_records
from medix.errors import MedixError, where
from medix.rewards import composite as reward
from medix.rewards.components import row_has_image
from medix.rewards.composite import CompositeReward, RewardResult


def read_scoring_rows(path: Path) -> list[dict]:
    rows = []
    for row, record in enumerate(read_records(path), 1):
        for name in ("response", "solution"):
            if not isinstance(record.get(name), str):
                got = "missing" if name not in record else f"a {type(record[name]).__name__}, not a string"
                raise MedixError(f"{where(path, row, name)}: {got} (each row needs 'response' and 'solution')")
        for name in ("problem", "id"):
            if name in record and not isinstance(record[name], (str, int)):
                raise MedixError(f"{where(path, row, name)}: must be a string")
        rows.append(record)
    if not rows:
        raise MedixError(f"{path}: no rows to score")
    return rows


def score_file(
    rows: list[dict],
    output_path: Path,
    composite: CompositeReward,
    chunk_size: int = 256,
    on_progress: Callable[[int], None] | None = None,
) -> list[RewardResult]:
    """Score validated rows (see `read_scoring_rows`), writing OUT chunk by chunk."""
    from medix.judge.audit_store import warn_if_weak

    config = getattr(composite, "config", None)  # a stand-in composite (tests) may have none
    if config is not None:
        warn_if_weak(config.judge, config.weights.judge)
    identity = composite.judge_identity
    output_path.parent.mkdir(parents=True, exist_ok=True)
    results: list[RewardResult] = []
    with output_path.open("w", encoding="utf-8") as out:
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start:start + chunk_size]
            scored = composite.score(
                [r["response"] for r in chunk],
                [r["solution"] for r in chunk],
                [str(r.get("problem", "")) for r in chunk],
                [row_has_image(r) for r in chunk],
            )
            for row, result in zip(chunk, scored):
                out.write(json.dumps({**row, **result.to_dict(), "judge": identity}, ensure_ascii=False) + "\n")
            out.flush()
            results.extend(scored)
            if on_progress:
                on_progress(len(chunk))
    return results


def summarize(results: list[RewardResult]) -> dict[str, float | int | None]:
    """Mean of overall and of each component over the rows where it applies, plus counts."""
    summary: dict[str, float | int | None] = {"rows": len(results)}
    for name in ("overall", *reward.names()):
        values = [getattr(r, name) for r in results if getattr(r, name) is not None]
        summary[name] = sum(values) / len(values) if values else None
    summary["judge_errors"] = sum(r.judge_error is not None for r in results)
    summary["judge_calls_skipped"] = sum(r.guard is not None for r in results)
    return summary


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def table(rows: list[dict], results: list[RewardResult], show: int = 20) -> tuple[list[str], list[list[str]]]:
    """The `medix reward score` table: (column headers, rows of cells) — id, answer, overall, one column per
    table component, note (judge error or guard) — for the first `show` rows; the last row is the mean."""
    columns = ["id", "answer", "overall", *(c.label for c in reward.COMPONENTS.values()), "note"]
    cells = []
    for i, (row, r) in enumerate(zip(rows[:show], results)):
        note = r.judge_error or r.guard or ""
        cells.append([str(row.get("id", i + 1)), (r.answer or "")[:40], _cell(r.overall),
                      *(_cell(r.values.get(name)) for name in reward.names()), note[:40]])
    s = summarize(results)
    cells.append(["mean", f"{s['rows']} rows", _cell(s["overall"]), *(_cell(s[name]) for name in reward.names()),
                  ""])
    return columns, cells
