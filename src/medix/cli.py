"""The `medix` command: thin wrappers over the public API.

    medix reward score --input examples/responses.jsonl --output scored.jsonl
    medix judge serve --model smollm2-135m --backend llamacpp
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medix.errors import MedixError

app = typer.Typer(help="MediX-R1: open-ended medical RL — composite reward, LLM judge. Research use only.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
reward_app = typer.Typer(help="Score responses with the composite reward.", no_args_is_help=True)
judge_app = typer.Typer(help="The LLM judge: serve it locally.", no_args_is_help=True)
app.add_typer(reward_app, name="reward")
app.add_typer(judge_app, name="judge")
console = Console(stderr=True)


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show info-level logs.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


@reward_app.command("score")
def reward_score(
    input: Path = typer.Option(..., "--input", "-i", help="JSONL rows with 'response' and 'solution'."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the scored rows (JSONL)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Reward config YAML (see docs/reward.md)."),
    profile: str = typer.Option("local", help="Model profile: 'local' (embedded, offline) or 'paper'."),
    show: int = typer.Option(20, help="Rows to show in the table (0 = summary only)."),
) -> None:
    """Score responses: overall, format, modality, accuracy_llm, accuracy_embed, judge_error per row."""
    from medix.config import load_reward_config
    from medix.rewards.composite import CompositeReward
    from medix.rewards.scoring import read_scoring_rows, score_file, summarize

    cfg = load_reward_config(config, profile)
    total = len(read_scoring_rows(input))  # validates the whole file before any model loads
    composite = CompositeReward(cfg)
    columns = [TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("score", total=total)
            results = score_file(input, output, composite, on_progress=lambda n: bar.advance(task, n))
    finally:
        composite.close()
    rows = read_scoring_rows(input)
    table = Table(title=f"composite reward — {input}", caption="Research use only; not for clinical decisions.")
    for name in ("id", "answer", "overall", "format", "modality", "llm", "embed", "note"):
        text_column = name in ("id", "answer", "note")
        table.add_column(name, justify="left" if text_column else "right", no_wrap=True, overflow="ellipsis",
                         max_width={"answer": 26, "note": 16, "id": 10}.get(name), min_width=None if text_column else 5)
    for i, (row, r) in enumerate(zip(rows, results)):
        if i >= show:
            break
        note = r.judge_error or r.guard or ""
        table.add_row(str(row.get("id", i + 1)), (r.answer or "")[:40], _fmt(r.overall), _fmt(r.format),
                      _fmt(r.modality), _fmt(r.accuracy_llm), _fmt(r.accuracy_embed), note[:40])
    s = summarize(results)
    table.add_section()
    table.add_row("mean", f"{s['rows']} rows", _fmt(s["overall"]), _fmt(s["format"]), _fmt(s["modality"]),
                  _fmt(s["accuracy_llm"]), _fmt(s["accuracy_embed"]), "")
    Console(width=None if sys.stdout.isatty() else 110).print(table)
    console.print(f"{s['judge_errors']} judge errors; {s['judge_calls_skipped']} of {s['rows']} rows decided "
                  "without the judge (exact match or trivial answer); '—' = not applicable")
    console.print(f"wrote {len(results)} rows to {output}")
    if s["judge_errors"]:
        console.print(f"[yellow]{s['judge_errors']} rows have judge_error set (overall left empty); "
                      "check the judge server and re-run.[/yellow]")


@judge_app.command("serve")
def judge_serve(
    model: str = typer.Option(..., "--model", "-m", help="Hub id / folder (vllm) or .gguf / 'smollm2-135m' (llamacpp)."),
    backend: str = typer.Option("vllm", help="'vllm' (GPU) or 'llamacpp' (CPU, GGUF)."),
    port: int = typer.Option(8000, help="Port on 127.0.0.1."),
    startup_timeout: float = typer.Option(900.0, help="Seconds to wait for the server to become healthy."),
    extra: list[str] = typer.Argument(None, help="Extra arguments passed to the server after '--'."),
) -> None:
    """Start an OpenAI-compatible judge server on 127.0.0.1 and keep it up until Ctrl-C."""
    from medix.judge.serve import ManagedServer, serve_forever, server_command

    command = server_command(model, backend, port, extra)
    url = f"http://127.0.0.1:{port}/v1"
    server = ManagedServer(command, url, startup_timeout)
    with console.status(f"starting {backend} judge server for {model} (log: {server.log_path})"):
        server.start()
    print(url, flush=True)
    console.print(f"judge ready at {url} — set judge.backend=openai, judge.base_urls=[{url}], "
                  f"judge.model={model}. Ctrl-C stops it.")
    raise typer.Exit(serve_forever(server))


@app.command("infer")
def infer(
    question: str = typer.Option(..., "--question", "-q", help="The medical question."),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="MediX-R1-2B / -8B / -30B, a hub id or folder (default: smollm2-135m)."),
    image: Optional[Path] = typer.Option(None, "--image", help="An image file (ignored by text-only models)."),
    server: Optional[str] = typer.Option(None, "--server", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1."),
    max_new_tokens: int = typer.Option(512, help="Generation budget (greedy decoding)."),
    as_json: bool = typer.Option(False, "--json", help="Print {modality, reasoning, answer, raw} as JSON."),
) -> None:
    """Answer one question: prints the modality tag, the reasoning (dimmed) and the answer."""
    import json

    from medix.infer import Assistant

    reply = Assistant(model, server=server, max_new_tokens=max_new_tokens).ask(question, image=image)
    for note in reply.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    if as_json:
        print(json.dumps(reply.to_dict(), ensure_ascii=False))
        return
    out = Console(highlight=False)
    out.print(f"[bold cyan]<{reply.modality}>[/bold cyan]" if reply.modality else "[dim](no modality tag)[/dim]")
    if reply.reasoning:
        out.print(f"[dim]{escape(reply.reasoning)}[/dim]")
    out.print(f"[bold]answer:[/bold] {escape(reply.answer if reply.answer is not None else reply.raw.strip())}")
    console.print("[dim]Research use only; not for clinical decisions.[/dim]")


@app.command("ui")
def ui(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="As for `medix infer` (default: smollm2-135m)."),
    server: Optional[str] = typer.Option(None, "--server", help="OpenAI-compatible base URL."),
    port: int = typer.Option(7860, help="Port on 127.0.0.1."),
    max_new_tokens: int = typer.Option(512, help="Generation budget per answer."),
) -> None:
    """Start the web demo (Gradio) on 127.0.0.1: ask about an image; browse evaluation results."""
    from medix.web.app import build_app, launch

    console.print(f"serving the MediX-R1 demo on http://127.0.0.1:{port} — Ctrl-C stops it. "
                  "Research use only; not for clinical decisions.")
    launch(build_app(model, server, max_new_tokens), port=port, block=True)


def main() -> None:
    try:
        app()
    except MedixError as err:
        console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
