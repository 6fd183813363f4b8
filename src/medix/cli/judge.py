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
    tasks: str = typer.Option("all", "--tasks", "-t", help="Tasks whose items give the pairs (report tasks are "
                              "skipped)."),
    kind: str = typer.Option("all", "--kind", help="Kinds of pairs: all, sentences (all but options) or a comma list "
                             "of options, frames, negation, yesno, laterality, location, numbers, synonyms."),
    pairs_file: Optional[Path] = typer.Option(None, "--pairs", help="Your labelled pairs (JSONL)."),
    n: int = typer.Option(200, "--n", help="Pairs at most (half positive, half negative)."),
    rounds: int = typer.Option(3, help="Rounds of the evaluation conversation for the flip count (1 = skip)."),
    rounds_n: Optional[int] = typer.Option(None, "--rounds-n", min=1, help="Pairs judged in the conversation (default: "
                                           "all; fewer for a slow judge, half positive and half negative)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report here."),
    png: Optional[Path] = typer.Option(None, "--png", help="ROC plot (default: beside --json; none without either)."),
    calibrate: Optional[Path] = typer.Option(None, "--calibrate", help="Write a judge config with the threshold "
                                             "chosen out of sample."),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds (by item) for the out-of-sample calibration figures."),
    seed: int = typer.Option(0, "--seed", help="Seed of the pair sample and the folds."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --json / --png / --calibrate files that exist."),
) -> None:
    """Measure a judge on labelled (reference, candidate, label) pairs: accuracy, TPR, FPR, AUC, thresholds."""
    import yaml

    from medix.backends import get_backend
    from medix.judge.config import JudgeConfig
    from medix.errors import MedixError
    from medix.files import check_output_file
    from medix.judge import Judge
    from medix.judge.audit import calibrated_config, run_audit
    from medix.judge.audit_store import save_audit
    from medix.judge.audit_plot import roc_png
    from medix.judge.pairs import parse_kinds

    judge_cfg = JudgeConfig.from_sources(config, {"backend": judge_backend, "model": judge_model,
                                                  "base_urls": [judge_url] if judge_url else None})
    if judge_url and not get_backend(judge_cfg.backend).served:
        raise MedixError(f"--judge-url names a server, but the judge backend is {judge_cfg.backend!r}, which runs "
                         "the model in this process: add --judge-backend openai to use the server, or drop the flag")
    png = png or (json_out.with_suffix(".png") if json_out else None)
    for output in (json_out, png, calibrate):  # before any judge loads: never the input, never a silent replace
        if output is not None:
            check_output_file(output, overwrite, inputs=[pairs_file] if pairs_file else [])
    pairs = _audit_pairs(pairs_file, data_dir, sample, tasks, n, hub, parse_kinds(kind), seed)
    if calibrate and len({p.label for p in pairs}) < 2:  # before the judge runs: nothing could be fitted
        raise MedixError("--calibrate: the pairs hold one label only (all YES or all NO); calibrate on both")
    with Judge(judge_cfg) as judge, _phase_bars() as progress:
        report = run_audit(judge, pairs, rounds, rounds_n, progress, folds)
    _show_audit(report, save_audit(report), judge_cfg)
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
                 hub: bool = False, kinds: tuple[str, ...] = ("options",), seed: int = 0) -> list:
    """Your labelled pairs (the first n), else pairs of `kinds` built from the items of `tasks` (report tasks
    left out: their references are whole reports): in --data-dir, in the hub datasets (--hub), else in the
    bundled sample set."""
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
            if spec.kind == "report":
                continue
            try:
                items += load_items(spec, root, protocol="paper")
            except TaskUnavailable as err:
                if hub or data_dir is not None:
                    console.print(f"[yellow]{spec.name} skipped:[/yellow] {escape(str(err))}")
                continue
        pairs = pairs_from_items(items, n, seed, kinds)
        if not sample and data_dir is None and not hub:
            console.print("no --data-dir: pairs from the bundled sample set")
    if not pairs:
        raise MedixError("no pairs to audit")
    return pairs


@app.command("serve")
def judge_serve(
    model: str = typer.Option(..., "--model", "-m", help="Hub id / folder (vllm) or .gguf / 'smollm2-135m' "
                              "(llamacpp)."),
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


def _show_audit(report: dict, kept: dict | None, judge_cfg) -> None:
    """The tables by kind and category, the calibration in and out of sample, and the summary lines."""
    console.print(_audit_table(report, judge_cfg))
    if report.get("calibration"):
        console.print(_calibration_table(report["calibration"]))
    for line in _audit_lines(report, kept):
        console.print(line)


def _audit_table(report: dict, judge_cfg):
    """Accuracy, false-YES and false-NO rates (and AUC) per kind of pair and per category, then overall."""
    from rich.table import Table

    table = Table(title=f"judge audit — {judge_cfg.model} ({judge_cfg.backend}), {report['pairs']} pairs, "
                        f"threshold {report['threshold']}")
    for column in ("kind / category", "n", "accuracy %", "false YES %", "false NO %", "AUC"):
        table.add_column(column, justify="left" if column == "kind / category" else "right")
    several = len(report.get("kinds") or []) > 1
    for kind in report.get("kinds") or []:
        if several:
            r = report["by_kind"][kind]
            auc = "—" if r.get("auc") is None else f"{r['auc']:.3f}"
            table.add_row(kind, str(r["n"]), _pct(r["accuracy"]), _pct(r["fpr"]), _pct(r["fnr"]), auc, style="bold")
        for source, r in report["by_source"].items():
            if r.get("kind", kind) == kind:
                label = source.split(" / ", 1)[-1] if several else source
                table.add_row(f"  {escape(label)}" if several else escape(label), str(r["n"]), _pct(r["accuracy"]),
                              _pct(r["fpr"]), _pct(r.get("fnr")), "")
    auc = "—" if report.get("auc") is None else f"{report['auc']:.3f}"
    table.add_row("all", str(report["n"]), _pct(report["accuracy"]), _pct(report["fpr"]), _pct(report.get("fnr")),
                  auc, style="bold")
    return table


def _calibration_table(calibration: dict):
    """Each calibration method in sample and out of sample (k folds by item), with the judge's own threshold."""
    from rich.table import Table

    table = Table(title=f"calibration — {calibration['folds']} folds, split {calibration['split']}")
    for column in ("method", "threshold", "in sample %", "out of sample %", "false YES %", "false NO %",
                   "worst kind (out of sample)"):
        table.add_column(column, justify="left" if column in ("method", "worst kind (out of sample)") else "right")

    def worst(summary: dict) -> str:
        kinds = [(r["accuracy"], k) for k, r in summary["by_kind"].items() if r["accuracy"] is not None]
        return f"{min(kinds)[1]} {_pct(min(kinds)[0])}%" if len(kinds) > 1 else "—"

    if calibration.get("current"):
        c = calibration["current"]
        table.add_row("this judge's threshold", f"{c['threshold']:.4f}", "—", _pct(c["accuracy"]), _pct(c["fpr"]),
                      _pct(c["fnr"]), worst(c))
    for method, entry in calibration["methods"].items():
        oos = entry["out_of_sample"]
        threshold = f"{entry['threshold']:.4f}" if "threshold" in entry else "per kind"
        table.add_row(method + (" (chosen)" if (calibration.get("chosen") or {}).get("method") == method else ""),
                      threshold, _pct(entry["in_sample"]["accuracy"]) if "in_sample" in entry else "—",
                      _pct(oos["accuracy"]) if oos else "—", _pct(oos["fpr"]) if oos else "—",
                      _pct(oos["fnr"]) if oos else "—", worst(oos) if oos else "—")
    return table


def _audit_lines(report: dict, kept: dict | None) -> list[str]:
    """The threshold, the ROC summary (or why there is none), the conversation's flips, a kept larger audit."""
    lines = [f"threshold {report['threshold']}: accuracy {_pct(report['accuracy'])}%, failures {report['failures']}"]
    if "auc" in report and report["auc"] is None:
        lines.append(f"AUC undefined: the {report['n']} judged pairs are all "
                     f"{'positive' if report['positives'] else 'negative'}"
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
                     f"{r['conversations']} ({_pct(r['share'])}%); final verdict differs in "
                     f"{r['final_differs_from_round_1']}")
    if kept is not None:
        lines.append(f"kept the cached audit of this judge on {kept['pairs']} pairs (this one has {report['pairs']}); "
                     "the weak-judge warning goes on quoting the larger one")
    return lines
