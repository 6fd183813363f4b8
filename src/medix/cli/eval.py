"""`medix eval`: run the phases (generate → judge → score → report), list tasks, submit, compare, contamination.

    medix eval run --model smollm2-135m --sample --protocol medix -o runs/eval-smoke
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from medix.cli.common import (SafeConsole, console, fmt, given_flags, progress_bar, progress_factory,
                              stdout_console)
from medix.safe_text import terminal_safe
from medix.errors import MedixError
from medix.serving.flags import with_serve_flags

app = typer.Typer(help="Evaluate on the 17 medical benchmarks: generate → judge → score → report.",
                  no_args_is_help=True)


@app.command("run")
@with_serve_flags(("serve_", "policy"), ("judge_serve_", "judge"))
def eval_run(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help="Policy: zoo name, hub id, folder, or a server's model name."),
    protocol: str = typer.Option("paper", help="'paper': the published MediX-R1 evaluation; 'medix': medix's own "
                                 "(format prompt, answer-only YES/NO judging, failures excluded)."),
    tasks: str = typer.Option("all", "--tasks", "-t", help="all, llm, vlm or task names, comma-separated."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Local mirrors DIR/<task>/test.jsonl."),
    sample: bool = typer.Option(False, "--sample", help="The bundled offline sample set (5 items per task)."),
    official_tasks: Optional[Path] = typer.Option(None, "--official-tasks", help="Your copy of the official "
                                                  "eval/tasks.yaml (utils.py beside it): "
                                                  "published prompts word for word."),
    limit: Optional[int] = typer.Option(None, "--limit", help="First N items per task."),
    phases: str = typer.Option("generate,judge,score", "--phases", help="Comma-separated subset, run in order."),
    output_dir: Path = typer.Option(Path("runs/eval"), "--output-dir", "-o", help="Records, scores and report."),
    backend: str = typer.Option("local", help="Generation: 'local' (transformers) or 'openai' (a server)."),
    base_url: Optional[list[str]] = typer.Option(None, "--base-url", help="Policy server (backend openai); repeat "
                                                 "for several (data parallel). Default http://127.0.0.1:8000/v1."),
    serve: bool = typer.Option(False, "--serve", help="Start vLLM on this node for the policy (and, with "
                               "--judge-serve-* flags, the judge) and stop it after its phase (docs/eval.md)."),
    judge_serve_port: int = typer.Option(8100, help="--serve: port of the first judge server."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Generation budget per answer (paper 2048, medix 1024)."),
    system_prompt: Optional[str] = typer.Option(None, help="System message before every question."),
    no_format_prompt: bool = typer.Option(False, "--no-format-prompt", help="Send the bare question (medix protocol)."),
    judge_backend: str = typer.Option("local", help="Judge: 'local' (embedded logits) or 'openai' "
                                      "(vLLM / OpenRouter)."),
    judge_model: Optional[str] = typer.Option(None, help="Judge model (paper: Qwen/Qwen3-14B). Default: the CPU judge "
                                              "qwen2.5-coder-1.5b where installed, else smollm2-135m."),
    judge_url: Optional[list[str]] = typer.Option(None, "--judge-url", help="Judge server (judge backend openai); "
                                                  "repeat for several. Default http://127.0.0.1:8001/v1."),
    judge_key_env: str = typer.Option("MEDIX_JUDGE_API_KEY", help="Env var with the judge API key "
                                      "(OPENROUTER_API_KEY)."),
    judge_template: Optional[Path] = typer.Option(None, help="Your own binary judge template (Jinja)."),
    rubric_template: Optional[Path] = typer.Option(None, help="Your own 0-5 rubric judge template (Jinja)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="EvalConfig YAML; flags given here win."),
    new_judge: bool = typer.Option(False, "--new-judge", help="Judge an existing run again with a different judge."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Retry samples recorded as failed."),
    refresh_changed: bool = typer.Option(False, "--refresh-changed",
                                         help="Regenerate items whose data changed since they were stored."),
    allow_text_only: bool = typer.Option(False, "--allow-text-only", help="Ask VLM items whose image is missing "
                                         "without it (every report says so); default: they fail, counted."),
    **serve_flags,
) -> None:
    """Run the evaluation phases; resumes when OUTPUT_DIR holds an interrupted run of the same model."""
    from medix.eval.config import EvalConfig
    from medix.eval.runner import run_eval, sample_dir

    flags = given_flags(ctx, exclude=("config", "new_judge"))
    cfg = EvalConfig.from_sources(config, {**flags, "sample": sample_dir()} if sample else flags)
    with progress_bar() as bar:
        try:
            result = run_eval(cfg, progress_factory(bar), new_judge=new_judge)
        except KeyboardInterrupt:
            # Records are flushed line by line; stop now rather than wait for a model's forward pass.
            console.print(f"interrupted: every record written so far is saved in {cfg.output_dir}; run the same "
                          "command again to resume")
            console.file.flush()
            os._exit(130)
    for task, reason in result.skipped.items():
        console.print(f"[yellow]skipped[/yellow] {task}: {escape(reason)}")
    if result.scores:
        print(terminal_safe(result.report))
        console.print(f"wrote {result.output_dir}/scores.json, scores.md, scores.png, report.html")
    unscored = [t for t, e in ((result.scores or {}).get("tasks") or {}).items() if e.get("scored", 1) == 0]
    if unscored:
        console.print(f"[red]no item scored[/red] in {', '.join(unscored)} (every judgment failed; see "
                      "judge_failures in scores.md); fix the judge and re-run with --retry-failed")
    if result.failures:
        console.print(f"[red]failed samples[/red] (recorded, not scored): {result.failures}; each record's error "
                      "says why (a server, a missing image: see scores.md); fix it and re-run with --retry-failed")
    if result.failures or unscored:
        raise typer.Exit(1)


@app.command("list")
def eval_list(data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Count items in local mirrors."),
              hub: bool = typer.Option(False, "--hub", help="Count items in the hub datasets (downloads them; "
                                       "with HF_HUB_OFFLINE=1, what the cache holds).")) -> None:
    """Every task: group, kind, judge, source and (with --data-dir or --hub) item count or why it is skipped."""
    from medix.eval.runner import task_listing

    table = Table(title="medix eval tasks")
    columns = ("task", "group", "kind", "judge", "source", "items", "bad_rows", "note")
    for name in columns:
        table.add_column(name.replace("_", " "), overflow="fold")
    for row in task_listing(str(data_dir) if data_dir else None, hub):
        table.add_row(*(fmt(row[k]) if row[k] is not None else "—" for k in columns))
    stdout_console(160).print(table)


@app.command("submit")
def eval_submit(run: Optional[Path] = typer.Argument(None, help="A scored run folder."),
                output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                      help="Folder for results/ (default: the run)."),
                check: Optional[Path] = typer.Option(None, "--check", help="Only check this submission zip."),
                allow_incomplete: bool = typer.Option(False, "--allow-incomplete",
                                                      help="Submit although paper tasks are missing (recorded)."),
                overwrite: bool = typer.Option(False, "--overwrite",
                                               help="Replace a submission of the same model already there.")) -> None:
    """Build and check the leaderboard submission in the official layout (results/<U>/, <md5>_<U>_submission.zip)."""
    from medix.eval.submit import build_submission, validate_submission
    from medix.files import check_output_dir

    if output is not None and check is None:
        check_output_dir(output, "--output")
    if check is not None:
        counts = validate_submission(check)
    elif run is not None:
        check = build_submission(run, output, allow_incomplete, overwrite)
        counts = validate_submission(check)
    else:
        raise MedixError("give a run folder to build a submission, or --check ZIP to check one")
    note = f"; incomplete: {', '.join(counts['incomplete'])}" if counts["incomplete"] else ""
    console.print(f"{check}: {counts['generations']} generations, {counts['judgments']} judgments over "
                  f"{len(counts['tasks'])} tasks — valid{note}")


@app.command("compare")
def eval_compare(run_a: Path = typer.Argument(..., help="Baseline run folder."),
                 run_b: Path = typer.Argument(..., help="Run to compare with the baseline.")) -> None:
    """Per-task score differences B − A with paired bootstrap 95% intervals."""
    from medix.eval.compare import compare_runs

    result = compare_runs(run_a, run_b)
    table = Table(title=f"{result['b']} − {result['a']} (points)")
    for name in ("task", "A", "B", "B − A", "95% CI", "n"):
        table.add_column(name, justify="left" if name == "task" else "right")
    for task, t in result["tasks"].items():
        table.add_row(task, f"{100 * t['a']:.1f}", f"{100 * t['b']:.1f}", f"{100 * t['diff']:+.1f}",
                      f"[{100 * t['ci'][0]:+.1f}, {100 * t['ci'][1]:+.1f}]", str(t["n"]))
    o = result["overall"]
    table.add_row("overall", "", "", f"{100 * o['diff']:+.1f}",
                  f"[{100 * o['ci'][0]:+.1f}, {100 * o['ci'][1]:+.1f}]", "")
    SafeConsole().print(table)
    if result["left_out"]:  # the comparison covers the shared judged items only: say what it leaves out
        console.print("[yellow]not compared:[/yellow] " + "; ".join(result["left_out"]), highlight=False)


@app.command("contamination")
def eval_contamination(
    train: Path = typer.Option(..., "--train", help="Training data (.jsonl/.json/.parquet with problem, solution, "
                               "images)."),
    tasks: str = typer.Option("all", "--tasks", "-t", help="Tasks to check."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Local mirrors DIR/<task>/test.jsonl."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write flagged items as JSONL."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT when it exists."),
) -> None:
    """Eval items sharing a 13-gram with, or whose image dHash matches, the training set."""
    import json

    from medix.eval.contamination import find_contamination
    from medix.files import check_output_file

    if output is not None:  # before the work: never the training file, never a silent replace
        check_output_file(output, overwrite, inputs=[train])
    from medix.eval.items import TaskUnavailable, load_items
    from medix.eval.registry import select_tasks

    items = []
    for spec in select_tasks(tasks):
        try:
            items += load_items(spec, str(data_dir) if data_dir else None)
        except TaskUnavailable as err:
            console.print(f"[yellow]skipped[/yellow] {spec.name}: {escape(str(err))}")
    flagged = find_contamination(items, train)
    if output:
        output.write_text("".join(json.dumps(f) + "\n" for f in flagged), encoding="utf-8")
    by_task: dict[str, int] = {}
    for f in flagged:
        by_task[f["task"]] = by_task.get(f["task"], 0) + 1
    console.print(f"{len(flagged)} of {len(items)} eval items overlap the training set: {by_task or 'none'}")
