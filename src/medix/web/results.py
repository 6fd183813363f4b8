"""Read an evaluation results folder and the published reference figures.

A results folder holds `scores.json`, as `medix eval` will write it:

    {"tasks": {"vqa-rad": {"score": 0.71, "n": 451}, ...}, "overall": 0.69}

`score` and `overall` are fractions in [0, 1] or percentages in (1, 100]; both are shown as percentages.
    python -c "from medix.web.results import score_rows; print(score_rows('runs/eval'))"
"""

from __future__ import annotations

from pathlib import Path

import yaml

from medix.errors import MedixError
from medix.eval.score import read_scores as scores_file

PUBLISHED = Path(__file__).parent / "published.yaml"


def _percent(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MedixError(f"{where}: expected a number, got {value!r}")
    if not 0 <= value <= 100:
        raise MedixError(f"{where}: {value} is outside 0..1 (fraction) or 0..100 (percent)")
    return round(100.0 * value if value <= 1 else float(value), 2)


def score_rows(folder: str | Path) -> list[dict]:
    """Rows {task, score (percent), n} from `folder/scores.json`, the overall row last."""
    data = scores_file(folder)
    file = str(folder)
    rows = []
    for task, entry in data["tasks"].items():
        if entry["score"] is None and "scored" in entry:  # a task with no scored item: nothing to show
            continue
        rows.append({"task": str(task), "score": _percent(entry["score"], f"{file}, task '{task}'"),
                     "n": entry.get("n")})
    if data.get("overall") is not None:
        n = sum(r["n"] for r in rows if isinstance(r["n"], int)) or None
        rows.append({"task": "overall", "score": _percent(data["overall"], f"{file}, 'overall'"), "n": n})
    return rows


def published_rows() -> tuple[list[dict], str]:
    """(rows {model, task, score}, source) of the published figures kept in published.yaml."""
    data = yaml.safe_load(PUBLISHED.read_text(encoding="utf-8"))
    return list(data["rows"]), str(data["source"])
