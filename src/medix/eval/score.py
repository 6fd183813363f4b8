"""Phase 3, score: judgments → per-task scores, group averages, 95% bootstrap intervals, breakdowns.

Task score = mean of the normalised verdicts (binary accuracy, or rubric mean / 5) over the samples the
judge could score; judge failures and failed generations are counted, not scored as 0. Overall = mean
over tasks; `llm` and `vlm` = means over the text and image tasks, as in the paper's table. Intervals:
percentile bootstrap over items (within each task; the group means resample every task together).
Records are sorted by id first, so a resumed run (different completion order) gives identical figures.
"""

from __future__ import annotations

import numpy as np

from medix.eval.registry import TaskSpec


def _sorted(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: (len(r["id"]), r["id"]))  # numeric ids in numeric order


def bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples,) means of `values` resampled with replacement."""
    if resamples == 0 or len(values) == 0:
        return np.empty(0)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))  # (B, n)
    return values[idx].mean(axis=1)


def interval(replicates: np.ndarray) -> list[float] | None:
    if replicates.size == 0:
        return None
    low, high = np.percentile(replicates, [2.5, 97.5])
    return [round(float(low), 6), round(float(high), 6)]


def breakdowns(spec: TaskSpec, records: list[dict], meta: dict[str, dict]) -> dict:
    """{column: {value: {score, n}}} for the task's breakdown columns present in the data."""
    out: dict[str, dict] = {}
    for column in spec.breakdowns:
        groups: dict[str, list[float]] = {}
        for r in records:
            value = meta.get(r["id"], {}).get(column)
            if value is not None and r.get("normalized") is not None:
                groups.setdefault(str(value), []).append(r["normalized"])
        if groups:
            out[column] = {k: {"score": round(float(np.mean(v)), 6), "n": len(v)} for k, v in sorted(groups.items())}
    return out


def task_score(spec: TaskSpec, records: list[dict], meta: dict[str, dict]) -> tuple[dict, np.ndarray]:
    records = _sorted(records)
    scored = np.array([r["normalized"] for r in records if r.get("normalized") is not None], dtype=float)
    entry = {
        "score": round(float(scored.mean()), 6) if scored.size else None,
        "n": int(scored.size), "group": spec.group, "kind": spec.kind,
        "metric": "rubric mean / 5" if spec.judge == "rubric" else "accuracy",
        "judge_failures": sum(1 for r in records if r.get("score") is None and not (r.get("error") or "").startswith("no response")),
        "generation_failures": sum(1 for r in records if (r.get("error") or "").startswith("no response")),
        "parse_failures": sum(r.get("parse_failures", 0) for r in records),
        "empty_answers": sum(1 for r in records if (r.get("note") or "").startswith("empty answer")),
        "breakdowns": breakdowns(spec, records, meta),
    }
    if spec.stand_in_for:
        entry["stand_in_for"] = spec.stand_in_for
    return entry, scored


def score_tasks(specs: list[TaskSpec], judgments: dict[str, list[dict]], meta: dict[str, dict[str, dict]],
                resamples: int = 1000, seed: int = 0) -> dict:
    """The scores.json body (without run identity): tasks, overall, llm, vlm, each with a 95% interval."""
    rng = np.random.default_rng(seed)
    tasks, reps = {}, {}
    for spec in specs:
        if spec.name not in judgments:
            continue
        entry, values = task_score(spec, judgments[spec.name], meta.get(spec.name, {}))
        if entry["score"] is None:
            continue
        replicates = bootstrap_means(values, resamples, rng)
        entry["ci"] = interval(replicates)
        tasks[spec.name], reps[spec.name] = entry, replicates
    out: dict = {"tasks": tasks}
    for label, names in (("overall", list(tasks)), *((g, [t for t in tasks if tasks[t]["group"] == g])
                                                      for g in ("llm", "vlm"))):
        if not names:
            out[label], out[f"{label}_ci"] = None, None
            continue
        out[label] = round(float(np.mean([tasks[t]["score"] for t in names])), 6)
        stacked = np.stack([reps[t] for t in names]) if resamples else np.empty((0, 0))  # (tasks, B)
        out[f"{label}_ci"] = interval(stacked.mean(axis=0)) if resamples else None
    return out
