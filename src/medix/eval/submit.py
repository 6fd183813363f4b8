"""`medix eval submit`: the leaderboard submission in the official layout, and its checker.

    medix eval submit runs/eval                     # → runs/eval/results/<U>/ and the zip beside it
    medix eval submit --check c8d23a8f_MediX_R1_8B_submission.zip

Layout (as the official submit script builds it), U = the model name after its last "/", every character
outside [A-Za-z0-9] replaced by "_" (MBZUAI/MediX-R1-8B → MediX_R1_8B):
    <U>/<U>.jsonl          one line per item: id "<task>_<n>" (n = position in dataset order), question,
                           answer (the reference), response (the raw output), answer_idx
    <U>/<U>_eval.jsonl     the same plus evaluation {"score": …} (binary 0/1 majority, rubric mean 0-5)
    <U>/<U>_score.txt      the per-task table and the overall score
zipped as `<first 8 hex of md5("<U>_submission")>_<U>_submission.zip`. A run missing a paper task, holding
fewer items than a task's test split (`test_items` in its YAML: a `--limit` run) or holding failed items is
refused unless `allow_incomplete`, which the score file then records on its INCOMPLETE line.

The checker trusts nothing in the zip: it recomputes every task's score and the overall from the records
(binary 0/1, rubric 0-5 → /5) and fails on a score file that disagrees, duplicate or missing ids, a record
whose question / answer / response differ between the two files, a null response, a verdict out of range,
and an incomplete submission that does not say so.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from medix.errors import MedixError
from medix.eval.registry import registry
from medix.eval.records import GenerationRecord, JsonlStore, generations_path
from medix.eval.score import read_judgments, read_scores, require_keys
from medix.safe_text import valid_unicode

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


def _records(run: Path, scores: dict) -> tuple[list[dict], list[dict], list[str]]:
    """(generation records, eval records, problems): failed items are written with an empty response and
    score 0 and named in `problems`, as are tasks with fewer items than their test split."""
    gens, evals, problems = [], [], []
    for task, entry in scores["tasks"].items():
        if task not in paper_tasks() or entry["score"] is None:
            continue  # stand-ins are not leaderboard tasks
        judged = {j["id"]: j for j in read_judgments(run, scores["judge_key"], [task]).get(task, [])}
        records = sorted(JsonlStore(generations_path(run, task)).read_as(GenerationRecord), key=lambda r: r["index"])
        failed = 0
        for g in records:
            j = judged.get(g["id"])
            score = j.get("score") if j else None
            failed += g["raw"] is None or score is None
            record = {"id": f"{task}_{g['index']}", "question": g["question"], "answer": g["reference"],
                      "response": g["raw"] or "", "answer_idx": g.get("answer_idx")}
            gens.append(record)
            evals.append({**record, "evaluation": {"score": 0 if score is None else score}})
        expected = registry()[task].test_items
        if expected and len(records) < expected:
            problems.append(f"{task} ({len(records)} of {expected} items)")
        if failed:
            problems.append(f"{task} ({failed} failed items, scored 0)")
    return gens, evals, problems


def recompute(evals: list[dict]) -> dict:
    """{task: mean normalised score} and "overall" (mean over tasks) from eval records with <task>_<n> ids."""
    by_task: dict[str, list[float]] = {}
    for record in evals:
        task = _task_of(record["id"])
        top = 5.0 if registry()[task].judge == "rubric" else 1.0
        by_task.setdefault(task, []).append(float(record["evaluation"]["score"]) / top)
    scores = {task: float(np.mean(values)) for task, values in by_task.items()}
    return {"tasks": scores, "overall": float(np.mean(list(scores.values()))) if scores else None}


def score_text(model: str, recomputed: dict, incomplete: list[str]) -> str:
    lines = [f"Model: {model}", "", f"{'Task':<36} {'Accuracy':>10} {'Accuracy (%)':>13}"]
    for task, score in recomputed["tasks"].items():
        lines.append(f"{task:<36} {score:>10.4f} {100 * score:>13.2f}")
    if recomputed["overall"] is not None:
        lines.append(f"{'Overall':<36} {recomputed['overall']:>10.4f} {100 * recomputed['overall']:>13.2f}")
    if incomplete:
        lines += ["", f"INCOMPLETE: {'; '.join(incomplete)}"]
    return "\n".join(lines) + "\n"


def build_submission(run: str | Path, output_dir: str | Path | None = None, allow_incomplete: bool = False,
                     overwrite: bool = False) -> Path:
    """Write OUTPUT/results/<U>/ and OUTPUT/results/<zip>; returns the zip path (OUTPUT defaults to the run).
    The score file is computed from the records written (as the checker recomputes it), not copied. The zip holds
    exactly the three files written (a stray file in the folder stays out); a submission already there (another
    run's of the same model name) is refused unless `overwrite`."""
    run = Path(run)
    scores = read_scores(run)
    require_keys(scores, ("model", "judge_key", "overall"), str(run))
    missing = [t for t in paper_tasks() if (scores["tasks"].get(t) or {}).get("score") is None]
    gens, evals, problems = _records(run, scores)
    incomplete = ([f"no scores for {', '.join(missing)}"] if missing else []) + problems
    if incomplete and not allow_incomplete:
        raise MedixError(f"{run}: not a complete submission: {'; '.join(incomplete)}. Finish the run (every paper "
                         "task, whole test splits, no failed items: --retry-failed), or pass --allow-incomplete "
                         "(the submission then says so)")
    u = underscored(scores["model"])
    folder = Path(output_dir or run) / "results" / u
    target = folder.parent / zip_name(u)
    texts = {f"{u}.jsonl": _lines(gens), f"{u}_eval.jsonl": _lines(evals),
             f"{u}_score.txt": score_text(scores["model"], recompute(evals), incomplete)}
    there = [str(p) for p in [target, *(folder / name for name in texts)] if p.exists()]
    if there and not overwrite:
        raise MedixError(f"a submission for {u} is already there ({', '.join(there)}); pass --overwrite to "
                         "replace it, or --output another folder")
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(texts):
            zf.write(folder / name, f"{u}/{name}")
        zf.comment = _provenance(scores)
    validate_submission(target)
    return target


def _lines(records: list[dict]) -> str:
    return "".join(valid_unicode(json.dumps(r, ensure_ascii=False)) + "\n" for r in records)


def _provenance(scores: dict) -> bytes:
    """The zip's comment (outside the official files, which stay as the checker expects): model, judge and the
    hub commit of every dataset and model the run read. `zipfile.ZipFile(path).comment` reads it back."""
    body = {"model": scores["model"], "judge_key": scores["judge_key"],
            "data_revisions": {t: e.get("data_revision") for t, e in scores["tasks"].items()},
            "hub_revisions": scores.get("hub_revisions", {})}
    return json.dumps(body, sort_keys=True).encode("utf-8")[:65535]


def _task_of(record_id: str) -> str:
    return record_id.rsplit("_", 1)[0]


def _read_zip(path: Path) -> tuple[str, list[dict], list[dict], str]:
    """(U, generation records, eval records, score file text) of a zip in exactly the official layout: the folder
    <U>/ and its three files, each once, regular, unencrypted, readable and UTF-8; any other member is refused."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as err:
        raise MedixError(f"{path}: not a readable zip ({err})") from None
    with zf:
        members = zf.infolist()
        tops = {m.filename.split("/")[0] for m in members if "/" in m.filename}
        if len(tops) != 1:
            raise MedixError(f"{path}: expected exactly one top folder <U>/, found {sorted(tops) or 'none'}")
        u = tops.pop()
        if path.name != zip_name(u):
            raise MedixError(f"{path}: the zip should be named {zip_name(u)} for folder {u}/")
        files = {f"{u}/{u}{suffix}" for suffix in (".jsonl", "_eval.jsonl", "_score.txt")}
        seen: set[str] = set()
        texts = {name: text for name, text in (_member_text(zf, m, path, files | {f"{u}/"}, seen) for m in members)
                 if name}
        for name in sorted(files):
            if name not in texts:
                raise MedixError(f"{path}: missing {name}")
        return (u, _jsonl_records(texts[f"{u}/{u}.jsonl"], f"{u}/{u}.jsonl", path),
                _jsonl_records(texts[f"{u}/{u}_eval.jsonl"], f"{u}/{u}_eval.jsonl", path), texts[f"{u}/{u}_score.txt"])


def _member_text(zf: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path, allowed: set[str],
                 seen: set[str]) -> tuple[str, str]:
    """(name, text) of one expected member, ("", "") for the folder entry; a MedixError for anything else."""
    import stat

    name = member.filename
    if name not in allowed:
        raise MedixError(f"{path}: unexpected member {name!r} (a submission holds {sorted(allowed)} only)")
    if name in seen:
        raise MedixError(f"{path}: member {name!r} appears twice")
    seen.add(name)
    if name.endswith("/"):
        return "", ""
    kind = stat.S_IFMT(member.external_attr >> 16)  # 0: no file type recorded (zipfile's writestr, many tools)
    if kind not in (0, stat.S_IFREG):
        raise MedixError(f"{path}: member {name!r} is not a regular file (a link or a device)")
    if member.flag_bits & 0x1:
        raise MedixError(f"{path}: member {name!r} is encrypted")
    try:
        data = zf.read(member)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError) as err:
        raise MedixError(f"{path}: member {name!r} cannot be read ({err})") from None
    try:
        return name, data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise MedixError(f"{path}: {name}, line {line}: not UTF-8") from None


def _check_records(path: Path, file: str, records: list[dict], id_pattern: re.Pattern) -> dict[str, dict]:
    """{id: record}; fails on a missing field, a bad or repeated id, a null response, a verdict out of range."""
    out: dict[str, dict] = {}
    for line, record in enumerate(records, 1):
        at = f"{path}: {file}, line {line}"
        absent = [k for k in RECORD_FIELDS if k not in record]
        if absent:
            raise MedixError(f"{at}: missing field(s) {', '.join(absent)}")
        if not id_pattern.match(str(record["id"])):
            raise MedixError(f"{at}: id {record['id']!r} is not <task>_<n> with a paper task name")
        if record["id"] in out:
            raise MedixError(f"{at}: id {record['id']!r} appears twice")
        if not isinstance(record["response"], str):
            raise MedixError(f"{at}: response is {record['response']!r}, not text (a failed item is not a response)")
        if file.endswith("_eval.jsonl"):
            score = (record.get("evaluation") or {}).get("score")
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise MedixError(f"{at}: evaluation.score {score!r} is not a number")
            rubric = registry()[_task_of(record["id"])].judge == "rubric"
            if not (0 <= score <= 5 if rubric else score in (0, 1)):
                raise MedixError(f"{at}: evaluation.score {score!r} is outside the task's scale "
                                 f"({'0-5 rubric' if rubric else 'binary 0 or 1'})")
        out[record["id"]] = record
    return out


def _claimed(text: str, path: Path, name: str) -> dict[str, float]:
    """{task or "Overall": fraction} from the score file's table lines; a task with two lines is refused."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^(\S+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s*$", line)
        if match:
            if match.group(1) in found:
                raise MedixError(f"{path}: {name} has two lines for {match.group(1)}")
            found[match.group(1)] = float(match.group(2))
    return found


def _incomplete_tasks(path: Path, gens: dict[str, dict]) -> list[str]:
    """Paper tasks absent, with a gap in their item numbers, or with fewer items than their test split."""
    numbers: dict[str, set[int]] = {}
    for record_id in gens:
        numbers.setdefault(_task_of(record_id), set()).add(int(record_id.rsplit("_", 1)[1]))
    out = []
    for task in paper_tasks():
        have, expected = numbers.get(task, set()), registry()[task].test_items
        if not have or have != set(range(len(have))) or (expected and len(have) < expected):
            out.append(task)
    return out


def validate_submission(path: str | Path) -> dict:
    """Check a submission zip against the official layout and recompute its scores from the records; the
    error names what is missing, malformed or claimed without support."""
    path = Path(path)
    u, gen_rows, eval_rows, score_file = _read_zip(path)
    known = "|".join(re.escape(t) for t in sorted(paper_tasks(), key=len, reverse=True))
    id_pattern = re.compile(rf"^({known})_(\d+)$")
    gens = _check_records(path, f"{u}.jsonl", gen_rows, id_pattern)
    evals = _check_records(path, f"{u}_eval.jsonl", eval_rows, id_pattern)
    if set(evals) != set(gens):
        only = sorted(set(gens) ^ set(evals))
        raise MedixError(f"{path}: the eval file and the generation file hold different ids (e.g. {only[0]})")
    for record_id, g in gens.items():
        differ = [k for k in RECORD_FIELDS if evals[record_id][k] != g[k]]
        if differ:
            raise MedixError(f"{path}: {record_id}: {', '.join(differ)} differ between {u}.jsonl and {u}_eval.jsonl")
    recomputed, claimed = recompute(list(evals.values())), _claimed(score_file, path, f"{u}_score.txt")
    for task, score in [*recomputed["tasks"].items(), ("Overall", recomputed["overall"])]:
        if task not in claimed:
            raise MedixError(f"{path}: {u}_score.txt has no line for {task}")
        if abs(claimed[task] - score) > 6e-5:  # the file rounds to 4 decimals
            raise MedixError(f"{path}: {u}_score.txt claims {task} {claimed[task]:.4f}; the records give {score:.4f}")
    incomplete = _incomplete_tasks(path, gens)
    declared = next((line for line in score_file.splitlines() if line.startswith("INCOMPLETE")), "")
    undeclared = [t for t in incomplete if not re.search(rf"\b{re.escape(t)}\b", declared)]
    if undeclared:
        raise MedixError(f"{path}: incomplete for {len(undeclared)} paper task(s) (absent, an item number missing, "
                         f"or fewer items than the test split): {', '.join(undeclared)}, and {u}_score.txt does not "
                         "say so")
    return {"model": u, "generations": len(gens), "judgments": len(evals),
            "tasks": sorted({_task_of(i) for i in gens}), "incomplete": incomplete}


def _jsonl_records(text: str, name: str, path: Path) -> list[dict]:
    out = []
    for line, row in enumerate(text.splitlines(), 1):
        if row.strip():
            try:
                record = json.loads(row)
            except json.JSONDecodeError as err:
                raise MedixError(f"{path}: {name}, line {line}: not JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise MedixError(f"{path}: {name}, line {line}: not a JSON object")
            out.append(record)
    return out
