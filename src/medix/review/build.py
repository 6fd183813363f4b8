"""`medix review create`: a blind review set from eval run folders.

    medix review create --run runs/8b --run runs/medgemma --sample -o review.sqlite --per-task 20 --k 2
    medix review create --run runs/8b --kind grading --data-dir benchmarks -o grading.sqlite --n 100

pairwise  two runs of different models over the same items: which answer is better (A / B / tie / both wrong)
grading   one run's answers against the reference: correct / partially correct / incorrect

Items: those every given run answered (a generation with a response), matched by task and item id; their question
and reference must be the same in every run (else the runs were made from different data). Images come from the
data the runs were made from (`--data-dir` or `--sample`): a VLM item whose image cannot be read stops the build,
naming it. Sampling is stratified: each task's items are taken round-robin over its modality strata (`--per-task`
per task), the tasks round-robin into `--n`, all shuffled with `--seed`. Blinding: the answer shown as A is from
the first run on half of the items (exactly, ±1) and from the second on the others, in a random order; which is
which goes to the set's hidden tables, with each answer's verdict from the run's own LLM judge.
"""

from __future__ import annotations

import io
import json
import logging
import random
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path

from medix.errors import MedixError
from medix.eval.records import GenerationRecord, JsonlStore, JudgmentRecord
from medix.files import read_json
from medix.review.store import ReviewStore, Settings

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One eval run folder: its model, generator identity, the generations answered and one judge's verdicts."""
    path: Path
    model: str
    generator: dict
    judge_key: str | None
    judge: dict | None
    answered: dict[tuple[str, str], GenerationRecord]
    verdicts: dict[tuple[str, str], JudgmentRecord]

    @property
    def protocol(self) -> str | None:
        return self.generator.get("protocol")


def read_run(path: str | Path, judge_key: str | None = None) -> Run:
    """A run folder as `medix eval run` writes it. The judge: `judge_key`, else the last one run.json lists that
    has a judgments folder (a run judged twice keeps both; the newest is the one its scores came from)."""
    path = Path(path)
    manifest_file = path / "run.json"
    if not manifest_file.is_file():
        raise MedixError(f"--run {path}: no run.json there; give a folder written by `medix eval run`")
    manifest = read_json(manifest_file)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("generator"), dict):
        raise MedixError(f"{manifest_file}: not a run manifest (no 'generator'); "
                         "give a folder written by medix eval run")
    answered = {}
    for file in sorted((path / "generations").glob("*.jsonl")):
        for record in JsonlStore(file).read_models(GenerationRecord):
            if record.error is None and (record.answer or record.raw or "").strip():
                answered[(record.task, record.id)] = record
    judges = manifest.get("judges") or {}
    folders = {p.name for p in (path / "judgments").glob("*") if p.is_dir()}
    if judge_key is not None and judge_key not in folders:
        raise MedixError(f"--judge-key {judge_key}: {path / 'judgments'} has {sorted(folders) or 'no judge folder'}")
    key = judge_key or next((k for k in reversed(list(judges)) if k in folders), None)
    verdicts = {}
    if key is not None:
        for file in sorted((path / "judgments" / key).glob("*.jsonl")):
            for record in JsonlStore(file).read_models(JudgmentRecord):
                verdicts[(record.task, record.id)] = record
    return Run(path, str(manifest.get("model")), manifest["generator"], key, judges.get(key), answered, verdicts)


def _shown(record: GenerationRecord) -> tuple[str, str | None]:
    """(answer, reasoning) as the page shows them: the <answer> block, or the whole response when it has none."""
    answer = record.answer if record.answer is not None and record.answer.strip() else (record.raw or "")
    return answer.strip(), (record.reasoning or "").strip() or None


def _strata(record: GenerationRecord, group: str) -> tuple[str, str]:
    modality = record.meta.get("modality") or ("image" if group == "vlm" else "text")
    answer_type = record.meta.get("answer_type") or "any"
    return str(modality), str(answer_type)


def _round_robin(lists: list[list]) -> list:
    return [x for x in chain.from_iterable(zip_longest(*lists)) if x is not None]


def sample_keys(strata: dict[tuple[str, str], str], n: int | None, per_task: int | None, seed: int) -> list:
    """Keys (task, id) chosen by task and modality: within a task round-robin over its modality strata (each
    shuffled), at most `per_task`; then the tasks round-robin, at most `n`; the result shuffled."""
    rng = random.Random(seed)
    by_task: dict[str, dict[str, list]] = {}
    for key in sorted(strata):
        by_task.setdefault(key[0], {}).setdefault(strata[key], []).append(key)
    per_task_lists = []
    for task in sorted(by_task):
        groups = [by_task[task][m] for m in sorted(by_task[task])]
        for group in groups:
            rng.shuffle(group)
        per_task_lists.append(_round_robin(groups)[:per_task])
    chosen = _round_robin(per_task_lists)[:n]
    rng.shuffle(chosen)
    return chosen


def _images(keys: list, runs: list[Run], data_dir: str | None) -> dict[tuple[str, str], bytes | None]:
    """Image bytes per VLM item from the data the runs were made from; a VLM item without one stops the build."""
    from PIL import Image

    from medix.eval.items import TaskUnavailable, load_items
    from medix.eval.registry import registry

    tasks = registry()
    out: dict[tuple[str, str], bytes | None] = {k: None for k in keys}
    for task in sorted({k[0] for k in keys}):
        spec = tasks.get(task)
        if spec is None or spec.group != "vlm":
            continue
        if data_dir is None:
            raise MedixError(f"task {task} asks about images, and no data was given: pass --data-dir DIR (or "
                             "--sample) with the data the runs were made from, so the reviewers see the images")
        try:
            items = {i.id: i for i in load_items(spec, data_dir, None, runs[0].protocol or "paper")}
        except TaskUnavailable as err:
            raise MedixError(f"task {task}: its data is not in {data_dir} ({err}); pass the --data-dir the runs "
                             "were made from") from None
        for key in (k for k in keys if k[0] == task):
            item = items.get(key[1])
            image = item.images[0] if item is not None and item.images else None
            try:
                data = Path(image).read_bytes()
                Image.open(io.BytesIO(data)).verify()
            except Exception as err:  # absent, unreadable or not an image
                why = "no such item in the data" if item is None else f"{image}: {err}"
                raise MedixError(f"task {task}, item {key[1]}: image missing ({why}); pass the data the runs were "
                                 "made from, or leave the task out with --tasks") from None
            out[key] = data
    return out


def _check_runs(runs: list[Run], kind: str) -> None:
    wanted = 2 if kind == "pairwise" else 1
    if len(runs) != wanted:
        raise MedixError(f"--kind {kind} takes {wanted} --run folder{'s' if wanted > 1 else ''}, got {len(runs)}")
    if kind == "pairwise":
        first, second = runs
        if first.path.resolve() == second.path.resolve() or first.generator == second.generator:
            raise MedixError(f"--run {first.path} and --run {second.path} are the same model and settings; a "
                             "pairwise review compares two different models")
        if first.protocol != second.protocol:
            raise MedixError(f"--run {first.path} used protocol {first.protocol!r} and --run {second.path} "
                             f"{second.protocol!r}: their questions differ, so their answers cannot be compared. "
                             "Evaluate both with the same --protocol")


def _shared(runs: list[Run], tasks: list[str] | None) -> list[tuple[str, str]]:
    keys = set(runs[0].answered)
    for run in runs[1:]:
        keys &= set(run.answered)
    if tasks:
        keys = {k for k in keys if k[0] in tasks}
    if not keys:
        named = " and ".join(str(r.path) for r in runs)
        raise MedixError(f"{named}: no item answered in every run" + (f" among tasks {', '.join(tasks)}" if tasks
                         else "") + "; review runs of the same tasks and data (check `medix eval run --tasks`)")
    for key in sorted(keys):
        first = runs[0].answered[key]
        for run in runs[1:]:
            other = run.answered[key]
            if (other.question, other.reference) != (first.question, first.reference):
                raise MedixError(f"task {key[0]}, item {key[1]}: question or reference differs between "
                                 f"{runs[0].path} and {run.path}; the runs were made from different data")
    return sorted(keys)


def build_set(output: str | Path, run_paths: list[str | Path], settings: Settings, n: int | None = None,
              per_task: int | None = None, tasks: list[str] | None = None, data_dir: str | None = None,
              judge_key: str | None = None) -> ReviewStore:
    """Read the runs, choose the items, blind them and write the set (see the module docstring)."""
    from medix.eval.registry import registry

    _refuse_reviewed(Path(output))
    runs = [read_run(p, judge_key) for p in run_paths]
    _check_runs(runs, settings.kind)
    keys = _shared(runs, tasks)
    groups = {name: spec.group for name, spec in registry().items()}
    strata = {k: _strata(runs[0].answered[k], groups.get(k[0], "llm"))[0] for k in keys}
    chosen = sample_keys(strata, n, per_task, settings.seed)
    images = _images(chosen, runs, data_dir)
    rng = random.Random(settings.seed + 1)
    first_as_a = [True] * ((len(chosen) + 1) // 2) + [False] * (len(chosen) // 2)  # balanced, then shuffled
    rng.shuffle(first_as_a)
    items = []
    for key, a_first in zip(chosen, first_as_a):
        record = runs[0].answered[key]
        order = [0, 1] if a_first or len(runs) == 1 else [1, 0]
        shown = [_shown(runs[i].answered[key]) for i in order[:len(runs)]]
        verdicts = [runs[i].verdicts.get(key) for i in order[:len(runs)]]
        modality, answer_type = _strata(record, groups.get(key[0], "llm"))
        items.append({"task": key[0], "item_id": key[1], "modality": modality, "answer_type": answer_type,
                      "question": record.question, "reference": record.reference, "image": images[key],
                      "answer_a": shown[0][0], "reasoning_a": shown[0][1],
                      "answer_b": shown[1][0] if len(shown) > 1 else None,
                      "reasoning_b": shown[1][1] if len(shown) > 1 else None,
                      "slot_a": order[0] + 1, "slot_b": order[1] + 1 if len(runs) > 1 else None,
                      "verdict_a": _normalized(verdicts[0]),
                      "verdict_b": _normalized(verdicts[1]) if len(verdicts) > 1 else None,
                      "judge_kind": next((v.kind for v in verdicts if v is not None), None)})
    described = [{"slot": i + 1, "model": r.model, "path": str(r.path.resolve()), "generator": r.generator,
                  "judge_key": r.judge_key, "judge": r.judge} for i, r in enumerate(runs)]
    log.info("review set: %d items of %d answered by every run", len(items), len(keys))
    return ReviewStore.create(output, settings, described, items)


def _refuse_reviewed(output: Path) -> None:
    """--overwrite replaces a set, never the reviews in one: a set that holds any is refused."""
    import sqlite3

    if not output.is_file():
        return
    try:
        held = ReviewStore(output).rows("SELECT COUNT(*) AS n FROM reviews")[0]["n"]
    except sqlite3.Error:
        return
    if held:
        raise MedixError(f"{output} holds {held} reviews; a new set would discard them. Choose another --output "
                         "(or move the old set away first)")


def _normalized(verdict: JudgmentRecord | None) -> float | None:
    return None if verdict is None else verdict.normalized


def describe(store: ReviewStore) -> dict:
    """What `medix review create` prints: items per task and modality, the settings (no model names)."""
    rows = store.rows("SELECT task, modality, COUNT(*) AS n FROM items GROUP BY task, modality ORDER BY task")
    return {"items": sum(r["n"] for r in rows), "strata": [dict(r) for r in rows],
            "settings": json.loads(json.dumps(store.settings().__dict__))}
