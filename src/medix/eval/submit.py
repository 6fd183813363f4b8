"""`medix eval submit`: the leaderboard submission in the official layout, and its checker.

    medix eval submit runs/eval                     # → runs/eval/results/<U>/ and the zip beside it
    medix eval submit --check c8d23a8f_MediX_R1_8B_submission.zip

Layout (as the official submit script builds it), U = the model name after its last "/", every character
outside [A-Za-z0-9] replaced by "_" (MBZUAI/MediX-R1-8B → MediX_R1_8B):
    <U>/<U>.jsonl          one line per item: id "<task>_<n>" (n = position in dataset order), question,
                           answer (the reference), response (the raw output), answer_idx
    <U>/<U>_eval.jsonl     the same plus evaluation {"score": …} (binary 0/1 majority, rubric mean 0-5)
    <U>/<U>_score.txt      the per-task table and the overall score
zipped as `<first 8 hex of md5("<U>_submission")>_<U>_submission.zip`. A run missing a paper task is refused
unless `allow_incomplete`, which the score file then records.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

from medix.errors import MedixError
from medix.eval.registry import registry
from medix.eval.schema import GenerationRecord, JsonlStore, JudgmentRecord, generations_path, judgments_path
from medix.eval.score import read_scores, require_keys

RECORD_FIELDS = ("id", "question", "answer", "response", "answer_idx")


def underscored(model: str) -> str:
    """The official folder name of a model: last path segment, non-alphanumerics → '_'."""
    last = [part for part in model.split("/") if part][-1] if model.strip("/") else "model"
    return re.sub(r"[^A-Za-z0-9]", "_", last)


def zip_name(u: str) -> str:
    base = f"{u}_submission"
    return f"{hashlib.md5(base.encode()).hexdigest()[:8]}_{base}.zip"


def paper_tasks() -> list[str]:
    return [name for name, spec in registry().items() if not spec.stand_in_for]


def _records(run: Path, scores: dict) -> tuple[list[dict], list[dict]]:
    gens, evals = [], []
    for task, entry in scores["tasks"].items():
        if task not in paper_tasks() or entry["score"] is None:
            continue  # stand-ins are not leaderboard tasks
        judged = {j["id"]: j for j in JsonlStore(judgments_path(run, scores["judge_key"], task)).read_as(JudgmentRecord)}
        for g in sorted(JsonlStore(generations_path(run, task)).read_as(GenerationRecord), key=lambda r: r.get("index", 0)):
            record = {"id": f"{task}_{g.get('index', 0)}", "question": g["question"], "answer": g["reference"],
                      "response": g["raw"], "answer_idx": g.get("answer_idx")}
            gens.append(record)
            j = judged.get(g["id"])
            score = j.get("score") if j else None
            evals.append({**record, "evaluation": {"score": 0 if score is None else score}})
    return gens, evals


def score_text(scores: dict, incomplete: list[str]) -> str:
    lines = [f"Model: {scores['model']}", "", f"{'Task':<36} {'Accuracy':>10} {'Accuracy (%)':>13}"]
    for task, entry in scores["tasks"].items():
        if task in paper_tasks() and entry["score"] is not None:
            lines.append(f"{task:<36} {entry['score']:>10.4f} {100 * entry['score']:>13.2f}")
    if scores.get("overall") is not None:
        lines.append(f"{'Overall':<36} {scores['overall']:>10.4f} {100 * scores['overall']:>13.2f}")
    if incomplete:
        lines += ["", f"INCOMPLETE: no scores for {', '.join(incomplete)}"]
    return "\n".join(lines) + "\n"


def build_submission(run: str | Path, output_dir: str | Path | None = None, allow_incomplete: bool = False) -> Path:
    """Write OUTPUT/results/<U>/ and OUTPUT/results/<zip>; returns the zip path (OUTPUT defaults to the run)."""
    run = Path(run)
    scores = read_scores(run)
    require_keys(scores, ("model", "judge_key", "overall"), str(run))
    missing = [t for t in paper_tasks() if (scores["tasks"].get(t) or {}).get("score") is None]
    if missing and not allow_incomplete:
        raise MedixError(f"{run}: no scores for {len(missing)} paper task(s): {', '.join(missing)}. Finish them, "
                         "or pass --allow-incomplete (the submission then says so)")
    u = underscored(scores["model"])
    gens, evals = _records(run, scores)
    folder = Path(output_dir or run) / "results" / u
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"{u}.jsonl": gens, f"{u}_eval.jsonl": evals}
    for name, records in files.items():
        (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    (folder / f"{u}_score.txt").write_text(score_text(scores, missing), encoding="utf-8")
    target = folder.parent / zip_name(u)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.iterdir()):
            zf.write(file, f"{u}/{file.name}")
    validate_submission(target)
    return target


def validate_submission(path: str | Path) -> dict:
    """Check a submission zip against the official layout; the error names what is missing or malformed."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as err:
        raise MedixError(f"{path}: not a readable zip ({err})") from None
    with zf:
        names = zf.namelist()
        tops = {n.split("/")[0] for n in names if "/" in n}
        if len(tops) != 1:
            raise MedixError(f"{path}: expected exactly one top folder <U>/, found {sorted(tops) or 'none'}")
        u = tops.pop()
        if path.name != zip_name(u):
            raise MedixError(f"{path}: the zip should be named {zip_name(u)} for folder {u}/")
        for suffix in (".jsonl", "_eval.jsonl", "_score.txt"):
            if f"{u}/{u}{suffix}" not in names:
                raise MedixError(f"{path}: missing {u}/{u}{suffix}")
        gens = _read_jsonl(zf, f"{u}/{u}.jsonl", path)
        evals = _read_jsonl(zf, f"{u}/{u}_eval.jsonl", path)
        incomplete = "INCOMPLETE" in zf.read(f"{u}/{u}_score.txt").decode("utf-8", "replace")
    known = "|".join(re.escape(t) for t in sorted(paper_tasks(), key=len, reverse=True))
    id_pattern = re.compile(rf"^({known})_(\d+)$")
    tasks = set()
    for file, records in ((f"{u}.jsonl", gens), (f"{u}_eval.jsonl", evals)):
        for line, record in enumerate(records, 1):
            absent = [k for k in RECORD_FIELDS if k not in record]
            if absent:
                raise MedixError(f"{path}: {file}, line {line}: missing field(s) {', '.join(absent)}")
            found = id_pattern.match(str(record["id"]))
            if not found:
                raise MedixError(f"{path}: {file}, line {line}: id {record['id']!r} is not <task>_<n> with a "
                                 "paper task name")
            tasks.add(found.group(1))
            if file.endswith("_eval.jsonl"):
                score = (record.get("evaluation") or {}).get("score")
                if isinstance(score, bool) or not isinstance(score, (int, float)):
                    raise MedixError(f"{path}: {file}, line {line}: evaluation.score {score!r} is not a number")
    if {r["id"] for r in evals} != {r["id"] for r in gens}:
        raise MedixError(f"{path}: the eval file and the generation file hold different ids")
    absent_tasks = [t for t in paper_tasks() if t not in tasks]
    if absent_tasks and not incomplete:
        raise MedixError(f"{path}: no records for {len(absent_tasks)} paper task(s): {', '.join(absent_tasks)}")
    return {"model": u, "generations": len(gens), "judgments": len(evals), "tasks": sorted(tasks),
            "incomplete": absent_tasks}


def _read_jsonl(zf: zipfile.ZipFile, name: str, path: Path) -> list[dict]:
    out = []
    for line, text in enumerate(zf.read(name).decode("utf-8", "replace").splitlines(), 1):
        if text.strip():
            try:
                out.append(json.loads(text))
            except json.JSONDecodeError as err:
                raise MedixError(f"{path}: {name}, line {line}: not JSON ({err.msg})") from None
    return out
