"""Read an evaluation results folder and the published reference figures.

A results folder holds `scores.json`, as `medix eval` will write it:

    {"tasks": {"vqa-rad": {"score": 0.71, "n": 451}, ...}, "overall": 0.69}

`score` and `overall` are fractions in [0, 1] or percentages in (1, 100]; both are shown as percentages.
    python -c "from medix.web.results import read_scores; print(read_scores('runs/eval'))"
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from medix.errors import MedixError

PUBLISHED = Path(__file__).parent / "published.yaml"


def _percent(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MedixError(f"{where}: expected a number, got {value!r}")
    if not 0 <= value <= 100:
        raise MedixError(f"{where}: {value} is outside 0..1 (fraction) or 0..100 (percent)")
    return round(100.0 * value if value <= 1 else float(value), 2)


def read_scores(folder: str | Path) -> list[dict]:
    """Rows {task, score (percent), n} from `folder/scores.json`, the overall row last."""
    folder = Path(str(folder).strip()).expanduser()
    file = folder / "scores.json" if folder.is_dir() else folder
    if not file.is_file():
        raise MedixError(f"no scores.json in {folder}; pick the folder `medix eval` wrote "
                         '(format: {"tasks": {task: {"score": float, "n": int}}, "overall": float})')
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MedixError(f"{file}: not valid JSON ({err})") from None
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, dict):
        raise MedixError(f"{file}: expected an object with a 'tasks' mapping")
    rows = []
    for task, entry in tasks.items():
        if not isinstance(entry, dict) or "score" not in entry:
            raise MedixError(f"{file}, task '{task}': expected {{\"score\": float, \"n\": int}}")
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
