"""Phase 3, score: judgments → per-task scores, group averages, 95% bootstrap intervals, breakdowns.

    medix eval run --model M --phases score -o runs/eval     # writes scores.json (+ the report files)

Task score = mean of the normalised verdicts (binary accuracy, or rubric mean / 5); judge failures and
failed generations are counted, and the protocol decides the rest (every caller names it): paper scores them
0 with every item in the denominator, as the official code does; medix leaves them out. Overall = mean
over tasks; `llm` and `vlm` = means over the text and image tasks, as in the paper's table. Intervals:
percentile bootstrap over items (within each task; the group means resample every task together).
Records are sorted by id first, so a resumed run (different completion order) gives identical figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medix.errors import MedixError
from medix.eval.protocol import Protocol, get_protocol
from medix.eval.registry import TaskSpec
from medix.eval.records import (GenerationRecord, JsonlStore, JudgmentRecord, generations_path, judgments_path,
                               read_data_checks)
from medix.stats import bootstrap_means, interval


def _sorted(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: (len(r["id"]), r["id"]))  # numeric ids in numeric order


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


def image_counts(records: list[dict], meta: dict[str, dict]) -> dict:
    """VLM items whose image was missing: how many, and how many of them were asked text-only anyway
    (`--allow-text-only`); the others are failed generations."""
    missing = [r for r in records if meta.get(r["id"], {}).get("image_missing")]
    return {"image_missing": len(missing),
            "asked_without_image": sum(r["status"] != "no_response" for r in missing)}


def task_score(spec: TaskSpec, records: list[dict], meta: dict[str, dict],
               protocol: Protocol | str) -> tuple[dict, np.ndarray]:
    """paper: every item is in the denominator, a failed one counts 0; medix: failures are excluded.
    `records`: JudgmentRecord dicts (their `status` set)."""
    records = _sorted(records)
    if get_protocol(protocol).failures_count_zero:
        scored = np.array([r.get("normalized") or 0.0 for r in records], dtype=float)
    else:
        scored = np.array([r["normalized"] for r in records if r.get("normalized") is not None], dtype=float)
    statuses = [r["status"] for r in records]
    judged = sum(1 for st in statuses if st in ("scored", "empty_answer"))
    entry = {
        "score": round(float(scored.mean()), 6) if scored.size and judged else None,
        "scored": judged,
        "n": int(scored.size), "group": spec.group, "kind": spec.kind,
        "metric": "rubric mean / 5" if spec.judge == "rubric" else "accuracy",
        "judge_failures": statuses.count("judge_failed"),
        "generation_failures": statuses.count("no_response"),
        "parse_failures": sum(r.get("parse_failures", 0) for r in records),
        "empty_answers": statuses.count("empty_answer"),
        **image_counts(records, meta),
        "breakdowns": breakdowns(spec, records, meta),
    }
    if spec.stand_in_for:
        entry["stand_in_for"] = spec.stand_in_for
    return entry, scored


def score_tasks(specs: list[TaskSpec], judgments: dict[str, list[dict]], meta: dict[str, dict[str, dict]],
                resamples: int = 1000, seed: int = 0, *, protocol: Protocol | str) -> dict:
    """The scores.json body (without run identity): tasks, overall, llm, vlm, each with a 95% interval.
    Stand-in tasks (e.g. IU X-ray for MIMIC-CXR) are scored and listed but never enter the means."""
    protocol = get_protocol(protocol)
    rng = np.random.default_rng(seed)
    tasks, reps = {}, {}
    for spec in specs:
        if spec.name not in judgments:
            continue
        entry, values = task_score(spec, judgments[spec.name], meta.get(spec.name, {}), protocol)
        if entry["score"] is None:  # nothing scored (every judgment failed): listed with its counts, no mean
            entry["ci"], tasks[spec.name] = None, entry
            continue
        replicates = bootstrap_means(values, resamples, rng)
        entry["ci"] = interval(replicates)
        tasks[spec.name], reps[spec.name] = entry, replicates
    out: dict = {"tasks": tasks, "protocol": protocol.name, "failures_counted_as": protocol.failures_counted_as}
    official = [t for t in tasks if not tasks[t].get("stand_in_for") and tasks[t]["score"] is not None]
    out["unscored"] = [t for t in tasks if tasks[t]["score"] is None]
    out["asked_without_image"] = {t: e["asked_without_image"] for t, e in tasks.items() if e["asked_without_image"]}
    for label, names in (("overall", official), *((g, [t for t in official if tasks[t]["group"] == g])
                                                   for g in ("llm", "vlm"))):
        if not names:
            out[label], out[f"{label}_ci"] = None, None
            continue
        out[label] = round(float(np.mean([tasks[t]["score"] for t in names])), 6)
        stacked = np.stack([reps[t] for t in names]) if resamples else np.empty((0, 0))  # (tasks, B)
        out[f"{label}_ci"] = interval(stacked.mean(axis=0)) if resamples else None
    return out


def read_judgments(out: Path, judge_key: str, tasks: list[str]) -> dict[str, list[dict]]:
    """{task: JudgmentRecord dicts} of `judge_key` in OUT, validated as read; tasks without a file left out.
    The one reader of a run's judgments (scoring, the report, compare, submit)."""
    paths = {name: judgments_path(out, judge_key, name) for name in tasks}
    return {name: JsonlStore(path).read_as(JudgmentRecord) for name, path in paths.items() if path.is_file()}


def run_score(out: Path, specs: list[TaskSpec], model: str, judge_identity: dict, judge_key: str,
              skipped: dict[str, str], resamples: int = 1000, seed: int = 0, *, protocol: Protocol | str,
              current: dict[str, set[str]] | None = None,
              generations: dict[str, list[GenerationRecord]] | None = None,
              judgments: dict[str, list[dict]] | None = None) -> dict:
    """Score the judgments of `judge_key` found in OUT and write OUT/scores.json; returns its body. Records
    are validated as read; with `current` (task → ids of this run's task list and limit) only those items
    are scored, and the ones not judged yet are counted (`unjudged`). `generations` / `judgments`: the
    records the caller already holds (else they are read from OUT)."""
    found = judgments if judgments is not None else read_judgments(out, judge_key, [s.name for s in specs])
    judgments, meta, unjudged, revisions = {}, {}, {}, {}
    for spec in specs:
        if spec.name in found:
            records = found[spec.name]
            if current is not None and spec.name in current:
                ids = current[spec.name]
                records = [r for r in records if r["id"] in ids]
                unjudged[spec.name] = len(ids - {r["id"] for r in records})
            judgments[spec.name] = records
            gens = (generations or {}).get(spec.name)
            if gens is None:
                gens = JsonlStore(generations_path(out, spec.name)).read_models(GenerationRecord)
            meta[spec.name] = {g.id: g.meta for g in gens}
            revisions[spec.name] = sorted({g.data_revision for g in gens if g.data_revision})
    body = score_tasks(specs, judgments, meta, resamples, seed, protocol=protocol)
    for name, entry in body["tasks"].items():  # generated (for this item list) but never judged
        ids = current[name] if current is not None and name in current else set(meta[name])
        entry["not_judged"] = len((set(meta[name]) & ids) - {r["id"] for r in judgments[name]})
        found_revisions = revisions.get(name, [])  # the hub commit the items were read from; None: a local mirror
        entry["data_revision"] = found_revisions[0] if len(found_revisions) == 1 else (found_revisions or None)
    body["failures"] = {label: sum(t[key] for t in body["tasks"].values()) for label, key in (
        ("judge", "judge_failures"), ("generation", "generation_failures"), ("not_judged", "not_judged"))}
    scores = {"model": model, "judge": judge_identity, "judge_key": judge_key, **body, "skipped": dict(skipped),
              "unjudged": {t: n for t, n in unjudged.items() if n}, "hub_revisions": _hub_revisions(out)}
    checks = read_data_checks(out)
    for name, entry in scores["tasks"].items():  # rows skipped at load never became items: counted here
        found = checks.get(name, {})
        entry["data"] = {"bad_rows": found.get("bad_rows", 0), "bad_row_examples": found.get("bad_row_examples", []),
                         **{k: v for k, v in found.items() if k not in ("bad_rows", "bad_row_examples")}}
    (out / "scores.json").write_text(json.dumps(scores, indent=2), encoding="utf-8")
    return scores


def _hub_revisions(out: Path) -> dict:
    """The commits of the hub datasets and models the run read (run.json's `hub_revisions`)."""
    try:
        return json.loads((out / "run.json").read_text(encoding="utf-8")).get("hub_revisions", {})
    except (OSError, ValueError, AttributeError):
        return {}


def read_scores(path: str | Path) -> dict:
    """The scores.json of a run folder (or the file itself), checked: compare, submit and the web demo read
    it through here. `tasks` maps each task to at least {"score", "n"}."""
    path = Path(str(path).strip()).expanduser()
    file = path / "scores.json" if path.is_dir() else path
    if not file.is_file():
        raise MedixError(f"no scores.json in {path}; score the run first (`medix eval run ... --phases score`) "
                         'or pick the folder `medix eval` wrote')
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MedixError(f"{file}: not valid JSON ({err})") from None
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, dict):
        raise MedixError(f"{file}: expected an object with a 'tasks' mapping")
    for task, entry in tasks.items():
        if not isinstance(entry, dict) or "score" not in entry:
            raise MedixError(f"{file}, task '{task}': expected {{\"score\": float, \"n\": int}}")
    return data


def require_keys(data: dict, keys: tuple[str, ...], source: str) -> None:
    """A scores.json written by `medix eval` carries these; a hand-made one may not."""
    missing = [k for k in keys if k not in data]
    if missing:
        raise MedixError(f"{source}: scores.json lacks {', '.join(missing)}; re-score the run with "
                         "`medix eval run ... --phases score`")
