"""`medix judge serve` and `medix judge audit` (the measurement itself is medix.judge.audit)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from medix.cli.common import console

app = typer.Typer(help="The LLM judge: serve it locally, audit it.", no_args_is_help=True)


@app.command("audit")
def judge_audit(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="A reward/judge YAML (its `judge:` section)."),
    judge_backend: Optional[str] = typer.Option(None, help="'local' or 'openai' (overrides the config)."),
    judge_model: Optional[str] = typer.Option(None, help="Judge model (overrides the config)."),
    judge_url: Optional[str] = typer.Option(None, help="Judge server (openai backend)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Benchmark mirrors DIR/<task>/test.jsonl."),
    sample: bool = typer.Option(False, "--sample", help="Build pairs from the bundled sample set."),
    hub: bool = typer.Option(False, "--hub", help="Build pairs from the tasks' hub datasets."),
    tasks: str = typer.Option("llm", "--tasks", "-t", help="Tasks whose MCQ items give the pairs."),
    pairs_file: Optional[Path] = typer.Option(None, "--pairs", help="Your labelled pairs (JSONL)."),
    n: int = typer.Option(200, "--n", help="Pairs at most (half positive, half negative)."),
    rounds: int = typer.Option(3, help="Rounds of the evaluation conversation for the flip count (1 = skip)."),
    rounds_n: Optional[int] = typer.Option(None, "--rounds-n", min=1, help="Pairs judged in the conversation (default: "
                                           "all; fewer for a slow judge, half positive and half negative)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report here."),
    png: Optional[Path] = typer.Option(None, "--png", help="ROC plot (default: beside --json; none without either)."),
    calibrate: Optional[Path] = typer.Option(None, "--calibrate", help="Write a judge config with the fitted threshold."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --json / --png / --calibrate files that exist."),
) -> None:
    """Measure a judge on labelled (reference, candidate, label) pairs: accuracy, TPR, FPR, AUC, thresholds."""
    import yaml

    from medix.backends import get_backend
    from medix.config import JudgeConfig
    from medix.errors import MedixError
    from medix.files import check_output_file
    from medix.judge import Judge
    from medix.judge.audit import calibrated_config, roc_png, run_audit, save_audit

    judge_cfg = JudgeConfig.from_sources(config, {"backend": judge_backend, "model": judge_model,
                                                  "base_urls": [judge_url] if judge_url else None})
    if judge_url and not get_backend(judge_cfg.backend).served:
        raise MedixError(f"--judge-url names a server, but the judge backend is {judge_cfg.backend!r}, which runs "
                         "the model in this process: add --judge-backend openai to use the server, or drop the flag")
    png = png or (json_out.with_suffix(".png") if json_out else None)
    for output in (json_out, png, calibrate):  # before any judge loads: never the input, never a silent replace
        if output is not None:
            check_output_file(output, overwrite, inputs=[pairs_file] if pairs_file else [])
    pairs = _audit_pairs(pairs_file, data_dir, sample, tasks, n, hub)
    if calibrate and len({p.label for p in pairs}) < 2:  # before the judge runs: nothing could be fitted
        raise MedixError("--calibrate: the pairs hold one label only (all YES or all NO); calibrate on both")
    with Judge(judge_cfg) as judge, _phase_bars() as progress:
        report = run_audit(judge, pairs, rounds, rounds_n, progress)
    kept = save_audit(report)
    console.print(_audit_table(report, judge_cfg))
    for line in _audit_lines(report, kept):
        console.print(line)
    if json_out:
        json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if png:
        roc_png(report, png)
    console.print(", ".join(f"{label}: {path}" for label, path in (("ROC plot", png), ("report", json_out)) if path)
                  or "pass --json FILE / --png FILE to keep the report / the ROC plot")
    if calibrate:
        calibrate.write_text(yaml.safe_dump({"judge": calibrated_config(judge_cfg, report)}, sort_keys=False),
                             encoding="utf-8")
        console.print(f"wrote {calibrate} (use it as the reward config, or its judge section in eval / train)")


def _audit_pairs(pairs_file: Path | None, data_dir: Path | None, sample: bool, tasks: str, n: int,
                 hub: bool = False) -> list:
    """Your labelled pairs (the first n), else pairs built from the MCQ items of `tasks`: in --data-dir, in the
    hub datasets (--hub), else in the bundled sample set."""
    from medix.errors import MedixError
    from medix.eval.items import TaskUnavailable, load_items
    from medix.eval.registry import select_tasks
    from medix.eval.runner import sample_dir
    from medix.judge.audit import pairs_from_file, pairs_from_items

    if pairs_file is not None:
        pairs = pairs_from_file(pairs_file)[:n]
    else:
        if hub and (sample or data_dir is not None):
            raise MedixError("--hub with --sample or --data-dir: choose one source of items")
        root = None if hub else sample_dir() if sample or data_dir is None else data_dir
        items = []
        for spec in select_tasks(tasks):
            try:
                items += load_items(spec, root, protocol="paper")
            except TaskUnavailable as err:
                if hub:
                    console.print(f"[yellow]{spec.name} skipped:[/yellow] {escape(str(err))}")
                continue
        pairs = pairs_from_items(items, n)
        if not sample and data_dir is None and not hub:
            console.print("no --data-dir: pairs from the bundled sample set")
    if not pairs:
        raise MedixError("no pairs to audit")
    return pairs


@app.command("serve")
def judge_serve(
    model: str = typer.Option(..., "--model", "-m", help="Hub id / folder (vllm) or .gguf / 'smollm2-135m' (llamacpp)."),
    engine: str = typer.Option("vllm", "--engine", "--backend", help="Serving program: 'vllm' (GPU) or 'llamacpp' "
                               "(CPU, GGUF)."),
    port: int = typer.Option(8000, help="Port on 127.0.0.1."),
    startup_timeout: float = typer.Option(900.0, help="Seconds to wait for the server to become healthy."),
    extra: list[str] = typer.Argument(None, help="Extra arguments passed to the server after '--'."),
) -> None:
    """Start an OpenAI-compatible judge server on 127.0.0.1 and keep it up until Ctrl-C."""
    from medix.serving.engines import server_command
    from medix.serving.process import ManagedServer, serve_forever

    command = server_command(model, engine, port, extra or [])
    url = f"http://127.0.0.1:{port}/v1"
    server = ManagedServer(command, url, startup_timeout)
    with console.status(f"starting {engine} judge server for {model} (log: {server.log_path})"):
        server.start()
    print(url, flush=True)
    console.print(f"judge ready at {url} — set judge.backend=openai, judge.base_urls=[{url}], "
                  f"judge.model={model}. Ctrl-C stops it.", markup=False)  # [url] is text, not a Rich tag
    raise typer.Exit(serve_forever(server))


@contextmanager
def _phase_bars():
    """A Rich progress bar with one line per audit phase, as the hook `progress(phase, done, total)`."""
    from rich.progress import MofNCompleteColumn, Progress

    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console, transient=True) as bar:
        lines: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in lines:
                lines[phase] = bar.add_task(phase, total=total)
            bar.update(lines[phase], completed=done)

        yield progress


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _audit_table(report: dict, judge_cfg):
    """Accuracy, TPR and FPR by the source of the pairs, then over all of them."""
    from rich.table import Table

    table = Table(title=f"judge audit — {judge_cfg.model} ({judge_cfg.backend}), {report['pairs']} pairs")
    for column in ("pairs from", "n", "accuracy %", "TPR %", "FPR %"):
        table.add_column(column, justify="left" if column == "pairs from" else "right")
    for source, r in report["by_source"].items():
        table.add_row(source, str(r["n"]), _pct(r["accuracy"]), _pct(r["tpr"]), _pct(r["fpr"]))
    table.add_row("all", str(report["n"]), _pct(report["accuracy"]), _pct(report["tpr"]), _pct(report["fpr"]),
                  style="bold")
    return table


def _audit_lines(report: dict, kept: dict | None) -> list[str]:
    """The threshold, the ROC summary (or why there is none), the conversation's flips, a kept larger audit."""
    lines = [f"threshold {report['threshold']}: accuracy {_pct(report['accuracy'])}%, failures {report['failures']}"]
    if "auc" in report and report["auc"] is None:
        lines.append(f"AUC undefined: the {report['n']} judged pairs are all {'positive' if report['positives'] else 'negative'}"
                     " (an ROC curve needs both labels)")
    elif "auc" in report:
        best, safe = report["thresholds"]["best_accuracy"], report["thresholds"]["fpr_at_most_5pct"]
        lines.append(f"AUC {report['auc']:.3f}; best threshold {best['threshold']:.4f} → accuracy "
                     f"{_pct(best['accuracy'])}%" + (f"; FPR ≤ 5% at {safe['threshold']:.4f} (TPR {_pct(safe['tpr'])}%)"
                                                     if safe else "; no threshold keeps FPR ≤ 5%"))
    else:
        lines.append("no probabilities from this judge (text verdicts): no AUC, no threshold to fit")
    if report.get("rounds"):
        r = report["rounds"]
        lines.append(f"evaluation conversation: a later round flips round 1 in {r['later_round_flips_round_1']} of "
                     f"{r['conversations']} ({_pct(r['share'])}%); final verdict differs in {r['final_differs_from_round_1']}")
    if kept is not None:
        lines.append(f"kept the cached audit of this judge on {kept['pairs']} pairs (this one has {report['pairs']}); "
                     "the weak-judge warning goes on quoting the larger one")
    return lines
