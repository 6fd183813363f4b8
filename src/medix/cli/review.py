"""`medix review create / serve / report / backup`: blind human expert review of eval runs (docs/review.md).

    medix review create --run runs/a --run runs/b --sample -o review.sqlite --per-task 20 --k 2
    medix review serve review.sqlite --host 0.0.0.0 --port 7861
    medix review report review.sqlite --html report.html --json report.json --pairs expert_pairs.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from medix.cli.common import console, stdout_console

app = typer.Typer(help="Blind expert review of eval runs: build a set, serve it to clinicians, report.",
                  no_args_is_help=True)


@app.command("create")
def review_create(
    run: List[Path] = typer.Option(..., "--run", help="An eval run folder (medix eval run -o); twice for pairwise."),
    output: Path = typer.Option(..., "--output", "-o", help="The review set to write (one SQLite file)."),
    kind: str = typer.Option("pairwise", help="pairwise (which of two answers is better) or grading (one run "
                             "against the reference)."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="At most this many items in all."),
    per_task: Optional[int] = typer.Option(None, "--per-task", min=1, help="At most this many items per task."),
    seed: int = typer.Option(0, help="Seed of the sampling and of the A / B order."),
    k: int = typer.Option(2, "--k", min=1, help="Reviewers per item."),
    show_reference: bool = typer.Option(True, "--show-reference/--hide-reference",
                                        help="Show reviewers the reference answer."),
    lease_minutes: float = typer.Option(10.0, help="An item on a reviewer's screen is held for them this long."),
    tasks: Optional[List[str]] = typer.Option(None, "--tasks", help="Only these tasks (repeatable)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="The data the runs were made from (images)."),
    sample: bool = typer.Option(False, "--sample", help="The runs were made with --sample (its images)."),
    judge_key: Optional[str] = typer.Option(None, help="Which judgments/<key> folder to take verdicts from."),
    overwrite: bool = typer.Option(False, help="Replace an existing set file."),
) -> None:
    """Build a blind review set from eval runs' generations (stratified by task and modality)."""
    from medix.eval.runner import sample_dir
    from medix.files import check_output_file
    from medix.review.build import build_set, describe
    from medix.review.store import Settings

    check_output_file(output, overwrite)
    settings = Settings(kind, k, show_reference, lease_minutes * 60, seed)
    data = str(sample_dir()) if sample else str(data_dir) if data_dir else None
    store = build_set(output, run, settings, n, per_task, tasks, data, judge_key)
    summary = describe(store)
    for stratum in summary["strata"]:
        console.print(f"  {stratum['task']:<28} {stratum['modality']:<12} {stratum['n']} items")
    console.print(f"wrote {output}: {summary['items']} items, {kind}, k = {k}. Next: medix review serve {output}")


@app.command("serve")
def review_serve(
    review_set: Path = typer.Argument(..., help="The review set (medix review create -o)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 for a network the team controls."),
    port: int = typer.Option(7861, help="Port."),
) -> None:
    """Serve the reviewers' page; one server per set (a second is refused). Ctrl-C stops it, nothing is lost."""
    from medix.claims import check_port_free
    from medix.review.app import build_review_app, launch_review
    from medix.review.store import ReviewStore

    store = ReviewStore.open(review_set)
    check_port_free(host, port, "--port")
    with store.serving(f"http://{host}:{port}"):
        console.print(f"serving review set {review_set} on http://{host}:{port} — Ctrl-C stops it. "
                      "Research use only.")
        launch_review(build_review_app(store), store.settings().kind, host, port, block=True)


@app.command("report")
def review_report(
    review_set: Path = typer.Argument(..., help="The review set."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every number as JSON here."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML page with plots."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Write the expert-labelled pairs (JSONL) for "
                                         "`medix judge audit --pairs`."),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
) -> None:
    """Preference with its interval, agreement between reviewers, the LLM judge against the experts (unblinded)."""
    from medix.files import check_output_file
    from medix.review.report import audit_rows, build_report, html_report, text_report
    from medix.review.store import ReviewStore

    store = ReviewStore.open(review_set)
    outputs = [p for p in (json_out, html_out, pairs) if p is not None]
    for path in outputs:
        check_output_file(path, overwrite, inputs=[review_set])
    report = build_report(store)
    stdout_console(160).print(text_report(report), highlight=False, markup=False, end="")
    if json_out:
        json_out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    if html_out:
        html_out.write_text(html_report(report), encoding="utf-8")
    if pairs:
        rows = audit_rows(store)
        pairs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        console.print(f"wrote {len(rows)} expert-labelled pairs to {pairs}: medix judge audit --pairs {pairs}")


@app.command("backup")
def review_backup(
    review_set: Path = typer.Argument(..., help="The review set (may be being served)."),
    output: Path = typer.Argument(..., help="Where to write the copy."),
    overwrite: bool = typer.Option(False, help="Replace an existing file."),
) -> None:
    """A consistent copy of a review set, safe while it is being served."""
    from medix.files import check_output_file
    from medix.review.store import ReviewStore

    check_output_file(output, overwrite, inputs=[review_set])
    ReviewStore.open(review_set).backup(output)
    console.print(f"copied {review_set} to {output}")
