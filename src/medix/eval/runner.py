"""The evaluation run: task selection → generate → judge → score → report, resumable at every step.

    from medix.eval.config import EvalConfig
    from medix.eval.runner import run_eval
    result = run_eval(EvalConfig(model="smollm2-135m", tasks=["llm"], data_dir="benchmarks", limit=3))

`OUT/run.json` records the model, the generation settings and the judges used. Re-running into the
same folder resumes; a different model or generation settings is refused (its records would mix), and a
different judge is refused unless `new_judge` is set (its verdicts then go to a new judgments folder).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from medix.backends import get_backend
from medix.errors import MedixError
from medix.eval.config import EvalConfig
from medix.eval.generate import check_resume, request_size, run_generate
from medix.eval.items import TaskUnavailable, load_items, load_task
from medix.eval.judging import EvalJudge, run_judge
from medix.eval.registry import TaskSpec, select_tasks
from medix.eval.records import (GenerationRecord, JsonlStore, data_checks_path, generations_path, judgments_path,
                               read_data_checks)
from medix.files import check_writable_dir
from medix.claims import hold_folder
from medix.judge import Judge
from medix.serving.fit import ContextFit

log = logging.getLogger(__name__)
SAMPLE_DIR = Path(__file__).parent / "sample"


def sample_dir() -> Path:
    """The bundled offline sample set: 5 items per redistributable task, with images (sample/SOURCES.md)."""
    return SAMPLE_DIR
Progress = Callable[[str, str, int], Callable[[int], None]]  # (phase, task, total) -> advance(n)


@dataclass
class RunResult:
    output_dir: Path
    tasks: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # "phase/task" -> failed samples
    current: dict[str, set[str]] = field(default_factory=dict)  # task -> ids of this task list and limit
    scores: dict | None = None
    report: str | None = None  # scores.md, as written


def _manifest(out: Path, cfg: EvalConfig, judge: EvalJudge, new_judge: bool) -> dict:
    """Check OUT/run.json against this run; refuse a different model / judge with what to do."""
    file = out / "run.json"
    current = {"model": cfg.model, "generator": cfg.generator_identity(), "judges": {judge.key: judge.identity}}
    if not file.is_file():
        return current
    try:
        previous = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise MedixError(f"{file} is not valid JSON; remove it or pick a new --output-dir") from None
    if previous.get("generator") != current["generator"]:
        raise MedixError(f"{out} holds a run of model {previous.get('model')!r} with settings "
                         f"{previous.get('generator')}; this run is {current['generator']}. "
                         "Use a new --output-dir (records of two models must not mix).")
    judges = previous.get("judges", {})
    if judge.key not in judges and judges and not new_judge and "judge" in cfg.phases:
        raise MedixError(f"{out} was judged by {list(judges.values())[-1]}; this judge is {judge.identity}. "
                         "Pass --new-judge to judge again (old verdicts are kept, never reused), or use a new "
                         "--output-dir.")
    current["judges"] = {**judges, judge.key: judge.identity}
    if previous.get("hub_revisions"):
        current["hub_revisions"] = previous["hub_revisions"]
    return current


@contextlib.contextmanager
def _served(cfg: EvalConfig, role: str, out: Path, fit: ContextFit = ContextFit()):
    """`serve: true`: the vLLM server of `role` ("policy" for generate, "judge" for judge), laid out by
    `policy_server` / `judge_server`, for the length of the phase; the client is pointed at it. Its log goes to
    OUT/logs/<role>.log."""
    spec = cfg.policy_server if role == "policy" else cfg.judge_server
    backend = cfg.backend if role == "policy" else cfg.judge.backend
    if not (cfg.serve and spec is not None and get_backend(backend).served):
        yield
        return
    from medix.serving.engines import require_vllm
    from medix.serving.layout import plan_server
    from medix.serving.process import ManagedServer

    require_vllm()
    launch = plan_server(role, cfg.model if role == "policy" else cfg.judge.model, spec, out / "logs", fit)
    log.warning("starting the %s server at %s (log: %s)", role, launch.url, launch.log_path)
    with ManagedServer(launch.command, launch.url, spec.startup_timeout_s, env=launch.env, log_path=launch.log_path):
        if role == "policy":
            cfg.base_urls = [launch.url]
        else:
            cfg.judge.base_urls = [launch.url]
        yield


def _policy_fit(cfg: EvalConfig, loaded: list[tuple[TaskSpec, list]]) -> ContextFit:
    """The policy server's context and images per prompt for the items this run sends (serve only)."""
    if not (cfg.serve and get_backend(cfg.backend).served) or cfg.policy_server.max_model_len is not None and \
            any(a.startswith("--limit-mm-per-prompt") for a in cfg.policy_server.extra_args):
        return ContextFit()
    from medix.serving.fit import fit_policy_server

    prompts = [request_size(cfg, item) for _, items in loaded for item in items]
    fit = fit_policy_server(cfg.model, prompts, cfg.max_new_tokens, cfg.protocol.image_max_side)
    chosen = cfg.policy_server.max_model_len
    if chosen is not None and fit.max_model_len is not None and chosen < fit.max_model_len:
        log.warning("--serve-max-model-len %d may be too short for this run: its longest prompt with images and "
                    "%d new tokens is bounded by %d tokens; items that do not fit are recorded as failures that "
                    "say so", chosen, cfg.max_new_tokens, fit.max_model_len)
    return fit


def _generate(cfg: EvalConfig, specs: list[TaskSpec], out: Path, result: RunResult, progress: Progress) -> None:
    checks = read_data_checks(out)
    loaded = []
    for spec in specs:
        try:
            data = load_task(spec, cfg.data_dir, cfg.limit, cfg.protocol)
        except TaskUnavailable as err:
            result.skipped[spec.name] = str(err)
            continue
        checks[spec.name] = data.checks()
        data_checks_path(out).write_text(json.dumps(checks, indent=2), encoding="utf-8")
        loaded.append((spec, data.items))
    with _served(cfg, "policy", out, _policy_fit(cfg, loaded)):
        for spec, items in loaded:
            result.current[spec.name] = {i.id for i in items}
            store = JsonlStore(generations_path(out, spec.name))
            check_resume(cfg, items, store, cfg.refresh_changed)
            if cfg.retry_failed:
                store.drop(lambda r: r.get("error") is not None)
            wanted = {i.id for i in items}
            todo = len(wanted - store.ids())
            advance = progress("generate", spec.name, todo)
            result.failures[f"generate/{spec.name}"] = run_generate(cfg, items, store, advance)


def _current_ids(cfg: EvalConfig, spec: TaskSpec, gens: list[GenerationRecord]) -> set[str]:
    """The ids this run is about: the task's items now (rows deleted from the data, or past a smaller
    --limit, drop out). Without the data here (a run folder judged elsewhere), the stored generations that
    are within the limit."""
    try:
        return {i.id for i in load_items(spec, cfg.data_dir, cfg.limit, cfg.protocol)}
    except TaskUnavailable as err:
        log.warning("%s: data not available (%s); scoring its stored items within the limit", spec.name, err)
        return {g.id for g in gens if cfg.limit is None or g.index < cfg.limit}


def _generations(out: Path, spec: TaskSpec) -> list[GenerationRecord] | None:
    """The task's generation records, read (and validated) once per run: the judge and score phases and
    the report use these."""
    path = generations_path(out, spec.name)
    if not path.is_file():
        return None
    return JsonlStore(path).read_models(GenerationRecord)


def run_eval(cfg: EvalConfig, progress: Progress | None = None, new_judge: bool = False) -> RunResult:
    progress = progress or (lambda phase, task, total: (lambda n: None))
    out = Path(cfg.output_dir)
    specs = select_tasks(cfg.tasks)
    if cfg.official_tasks:
        from medix.eval.official import apply_official

        specs = apply_official(specs, cfg.official_tasks)
    if cfg.data_dir is not None and not Path(cfg.data_dir).is_dir():
        raise MedixError(f"--data-dir {cfg.data_dir} does not exist (a folder holding <task>/test.jsonl)")
    check_writable_dir(out, f"--output-dir {out} cannot be written")  # before any model loads
    with hold_folder(out, f"medix eval run --model {cfg.model}"):  # a second run on OUT names this one, stops
        judge = EvalJudge(Judge(cfg.judge), cfg.judge_rounds, cfg.protocol)
        try:
            return _run(cfg, specs, out, judge, progress, new_judge)
        finally:
            judge.judge.close()


def _run(cfg: EvalConfig, specs: list[TaskSpec], out: Path, judge: EvalJudge, progress: Progress,
         new_judge: bool) -> RunResult:
    manifest = _manifest(out, cfg, judge, new_judge)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    result = RunResult(out)
    if "generate" in cfg.phases:
        _generate(cfg, specs, out, result, progress)
    _note_revisions(out, manifest)
    generations: dict[str, list[GenerationRecord]] = {}
    for spec in specs:
        if spec.name in result.skipped:
            continue
        gens = _generations(out, spec)
        if gens is None:
            result.skipped[spec.name] = "no generations yet (run the generate phase)"
            continue
        generations[spec.name] = gens
        if spec.name not in result.current:
            result.current[spec.name] = _current_ids(cfg, spec, gens)
    available = [s for s in specs if s.name in generations]
    result.tasks = [s.name for s in available]
    if "judge" in cfg.phases:
        with _served(cfg, "judge", out):
            _judge_phase(cfg, available, out, judge, result, progress, generations, manifest)
    _note_revisions(out, manifest)  # with the judge's model, when it loads from the hub
    if "score" in cfg.phases:
        from medix.eval.report import write_report
        from medix.eval.score import read_judgments, run_score

        judgments = read_judgments(out, judge.key, [s.name for s in available])
        noted = manifest.get("judges", {}).get(judge.key)
        result.scores = run_score(out, available, cfg.model, noted or judge.identity, judge.key, result.skipped,
                                  cfg.bootstrap, cfg.seed, protocol=cfg.protocol, current=result.current,
                                  generations=generations, judgments=judgments)
        result.report = write_report(out, result.scores, cfg.report_samples, generations, judgments)
    result.failures = {k: v for k, v in result.failures.items() if v}
    return result


def _judge_phase(cfg: EvalConfig, specs: list[TaskSpec], out: Path, judge: EvalJudge, result: RunResult,
                 progress: Progress, generations: dict[str, list[GenerationRecord]], manifest: dict) -> None:
    from medix.judge.audit_store import warn_if_weak

    warn_if_weak(cfg.judge)
    judge.judge.probe()  # so the first record's identity already says whether P(YES) is available
    _note_identity(out, judge, manifest)
    for spec in specs:
        gens = [g for g in generations[spec.name] if g.id in result.current[spec.name]]
        store = JsonlStore(judgments_path(out, judge.key, spec.name))
        if cfg.retry_failed:
            store.drop(lambda r: r.get("score") is None)
        todo = len({g.id for g in gens} - store.ids())
        result.failures[f"judge/{spec.name}"] = run_judge(spec, judge, gens, store, progress("judge", spec.name, todo))


def _note_revisions(out: Path, manifest: dict) -> None:
    """OUT/run.json's `hub_revisions`: the commit of every hub dataset and model this run (and the runs before it
    into OUT) read, `"dataset <repo>"` / `"model <repo>"` → SHA."""
    from medix import hub

    found = {**manifest.get("hub_revisions", {}), **hub.loaded()}
    if found != manifest.get("hub_revisions"):
        manifest["hub_revisions"] = found
        (out / "run.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _note_identity(out: Path, judge: EvalJudge, manifest: dict) -> None:
    """OUT/run.json's entry for this judge (`manifest`, as this run wrote it), with what the probe noted
    (e.g. `p_yes: unavailable`)."""
    if manifest.get("judges", {}).get(judge.key) != judge.identity:
        manifest.setdefault("judges", {})[judge.key] = judge.identity
        (out / "run.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def task_listing(data_dir: str | None = None, from_hub: bool = False) -> list[dict]:
    """Rows {task, group, kind, judge, source, items, bad_rows, note} for `medix eval list`: counted in the local
    mirrors of `data_dir`, or (`from_hub`) in the hub datasets, downloaded into the Hugging Face cache (offline,
    HF_HUB_OFFLINE=1: what the cache holds), each with the commit read."""
    from medix.eval.registry import registry

    if data_dir is not None and not Path(data_dir).is_dir():
        raise MedixError(f"--data-dir {data_dir} does not exist (a folder holding <task>/test.jsonl)")
    if data_dir is not None and from_hub:
        raise MedixError("--data-dir and --hub: choose one (local mirrors or the hub)")
    rows = []
    for spec in registry().values():
        count, bad, note = None, None, spec.description
        if data_dir is not None or from_hub:
            try:
                data = load_task(spec, data_dir)
                count, bad = len(data.items), len(data.bad_rows)
                if data.flags:
                    note = "; ".join(f"{v} {k.replace('_', ' ')}" for k, v in data.flags.items()) + f"; {note}"
                if data.revision:
                    note = f"commit {data.revision[:12]}; {note}"
            except MedixError as err:  # no data, or a bad row: this task is skipped, the listing goes on
                note = f"skipped: {err}"
        if spec.stand_in_for:
            note = f"stand-in for {spec.stand_in_for}; {note}"
        rows.append({"task": spec.name, "group": spec.group, "kind": spec.kind, "judge": spec.judge,
                     "source": spec.source_label, "items": count, "bad_rows": bad, "note": note})
    return rows
