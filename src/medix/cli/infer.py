"""`medix infer` (one question, in the terminal) and `medix ui` (the web demo): the assistant, asked by a person.

    medix infer -q "Which vessel is occluded?" --image angio.png --model MediX-R1-2B
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from medix.cli.common import SafeConsole, console

# Its commands sit at the top level of `medix` (added to the app without a group name).
app = typer.Typer()


@app.command("infer")
def infer(
    question: str = typer.Option(..., "--question", "-q", help="The medical question."),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="MediX-R1-2B / -8B / -30B, a hub id or folder (default: smollm2-135m)."),
    image: Optional[Path] = typer.Option(None, "--image", help="An image file (ignored by text-only models)."),
    server: Optional[str] = typer.Option(None, "--server", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1."),
    max_new_tokens: int = typer.Option(512, help="Generation budget (greedy decoding)."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for --server per request (one retry)."),
    as_json: bool = typer.Option(False, "--json", help="Print {modality, reasoning, answer, raw} as JSON."),
) -> None:
    """Answer one question: prints the modality tag, the reasoning (dimmed) and the answer."""
    import json

    from medix.infer import Assistant

    assistant = Assistant(model, server=server, max_new_tokens=max_new_tokens, timeout_s=timeout)
    reply = assistant.ask(question, image=image)
    for note in reply.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    if as_json:
        print(json.dumps(reply.to_dict(), ensure_ascii=False))
        return
    out = SafeConsole(highlight=False)
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
    from medix.claims import check_port_free
    from medix.web.app import build_app, launch

    check_port_free("127.0.0.1", port, "--port")
    console.print(f"serving the MediX-R1 demo on http://127.0.0.1:{port} — Ctrl-C stops it. "
                  "Research use only; not for clinical decisions.")
    launch(build_app(model, server, max_new_tokens), port=port, block=True)
