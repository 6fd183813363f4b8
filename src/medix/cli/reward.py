"""`medix reward score`: the composite reward over a JSONL file, a table of the rows, exit 1 on judge errors."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from medix.cli.common import console, progress_bar, stdout_console

app = typer.Typer(help="Score responses with the composite reward.", no_args_is_help=True)

_TEXT_WIDTHS = {"answer": 26, "note": 16, "id": 10}


@app.command("score")
def reward_score(
    input: Path = typer.Option(..., "--input", "-i", help="JSONL rows with 'response' and 'solution'."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the scored rows (JSONL)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Reward config YAML (see docs/reward.md)."),
    profile: str = typer.Option("local", help="Model profile: 'local' (embedded, offline) or 'paper'."),
    show: int = typer.Option(20, help="Rows to show in the table (0 = summary only)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT when it exists."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="Judge model (overrides the profile and "
                                              "config), e.g. qwen2.5-coder-1.5b (the CPU judge, medix[cpu-judge])."),
) -> None:
    """Score responses: overall, format, modality, accuracy_llm, accuracy_embed, judge_error per row.

    Exits 1 when any row has judge_error (every row is still written), 2 on bad input."""
    from medix.rewards.config import load_reward_config
    from medix.files import check_output_file
    from medix.rewards.composite import CompositeReward
    from medix.rewards.score_file import read_scoring_rows, score_file, summarize

    cfg = load_reward_config(config, profile, {"judge": {"model": judge_model}} if judge_model is not None else None)
    rows = read_scoring_rows(input)  # validates the whole file before any model loads
    check_output_file(output, overwrite, inputs=[input])
    composite = CompositeReward(cfg)
    try:
        with progress_bar("scoring") as bar:
            task = bar.add_task("score", total=len(rows))
            results = score_file(rows, output, composite, on_progress=lambda n: bar.advance(task, n))
    finally:
        composite.close()
    summary = summarize(results)
    stdout_console(110).print(score_table(f"composite reward — {input}", rows, results, show))
    console.print(f"{summary['judge_errors']} judge errors; {summary['judge_calls_skipped']} of {summary['rows']} "
                  "rows decided without the judge (exact match or trivial answer); '—' = not applicable")
    console.print(f"wrote {len(results)} rows to {output}")
    if summary["judge_errors"]:
        first = next(r.judge_error for r in results if r.judge_error)
        console.print(f"[red]{summary['judge_errors']} of {summary['rows']} rows have judge_error set[/red] (overall "
                      f"left empty; first: {escape(first[:300])}); check the judge server and re-run with --overwrite",
                      highlight=False, soft_wrap=True)  # one line, however narrow the terminal
        raise typer.Exit(1)


def score_table(title: str, rows: list[dict], results: list, show: int) -> Table:
    """The first `show` rows and the means, with the columns of `rewards.score_file.table` (one per component)."""
    from medix.rewards.score_file import table as reward_table

    columns, cells = reward_table(rows, results, max(show, 0))
    table = Table(title=title, caption="Research use only; not for clinical decisions.")
    for name in columns:
        text_column = name in _TEXT_WIDTHS
        table.add_column(name, justify="left" if text_column else "right", no_wrap=True, overflow="ellipsis",
                         max_width=_TEXT_WIDTHS.get(name), min_width=None if text_column else 5)
    for cell_row in cells[:-1]:
        table.add_row(*cell_row)
    table.add_section()
    table.add_row(*cells[-1])  # the means
    return table
