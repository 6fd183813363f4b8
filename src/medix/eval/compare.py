"""`medix eval compare RUN_A RUN_B`: per-task differences B − A with paired bootstrap 95% intervals.

Items are paired by id and counted as each run's protocol scores them (`scores.json` says which): under the
paper protocol a failed item counts 0, as in its task score; under medix's only items judged in both runs
count. The same resampled item indices are used for both runs, so the interval reflects the per-item pairing
(much tighter than comparing two independent intervals).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medix.errors import MedixError
from medix.eval.protocol import get_protocol
from medix.eval.score import read_judgments, read_scores, require_keys
from medix.stats import interval


def _normalized(run: Path) -> tuple[dict, dict[str, dict[str, float]]]:
    scores = read_scores(run)
    require_keys(scores, ("model", "judge", "judge_key"), str(run))
    zero = get_protocol(scores.get("protocol", "medix")).failures_count_zero  # runs before the field: medix
    values = {}
    for task, records in read_judgments(run, scores["judge_key"], list(scores["tasks"])).items():
        values[task] = {r["id"]: r.get("normalized") or 0.0 for r in records} if zero else \
            {r["id"]: r["normalized"] for r in records if r.get("normalized") is not None}
    return scores, values


def compare_runs(run_a: str | Path, run_b: str | Path, resamples: int = 1000, seed: int = 0) -> dict:
    scores_a, a = _normalized(Path(run_a))
    scores_b, b = _normalized(Path(run_b))
    if scores_a.get("protocol") != scores_b.get("protocol"):
        raise MedixError(f"the two runs were scored under different protocols ({scores_a.get('protocol')} vs "
                         f"{scores_b.get('protocol')}); they count failed items differently. Re-score one of them.")
    if scores_a["judge"] != scores_b["judge"]:
        raise MedixError("the two runs were judged by different judges; differences would mix judge and model "
                         f"({scores_a['judge']['model']} vs {scores_b['judge']['model']}). Re-judge one of them.")
    rng = np.random.default_rng(seed)
    tasks, reps = {}, []
    for task in [t for t in a if t in b]:
        ids = sorted(set(a[task]) & set(b[task]), key=lambda i: (len(i), i))
        if not ids:
            continue
        diff = np.array([b[task][i] - a[task][i] for i in ids])  # (n,) paired per-item differences
        idx = rng.integers(0, len(ids), size=(resamples, len(ids)))
        boot = diff[idx].mean(axis=1)
        reps.append(boot)
        tasks[task] = {"a": float(np.mean([a[task][i] for i in ids])), "b": float(np.mean([b[task][i] for i in ids])),
                       "diff": float(diff.mean()), "ci": interval(boot), "n": len(ids)}
    if not tasks:
        raise MedixError("the runs share no judged items; compare runs of the same tasks")
    overall = np.stack(reps).mean(axis=0)
    return {"a": scores_a["model"], "b": scores_b["model"], "tasks": tasks,
            "overall": {"diff": float(np.mean([t["diff"] for t in tasks.values()])), "ci": interval(overall)},
            "left_out": _left_out(a, b, tasks)}


def _left_out(a: dict, b: dict, compared: dict) -> list[str]:
    """What the comparison does not cover: tasks of one run only, and items judged in one run only (another
    --limit, failed items), per task; empty when both runs hold the same judged items."""
    notes = [f"{t}: only in {side}" for side, mine, other in (("A", a, b), ("B", b, a))
             for t in mine if t not in other]
    for task, entry in compared.items():
        only_a, only_b = len(set(a[task]) - set(b[task])), len(set(b[task]) - set(a[task]))
        if only_a or only_b:
            notes.append(f"{task}: {entry['n']} shared items compared ({only_a} only in A, {only_b} only in B)")
    return notes
