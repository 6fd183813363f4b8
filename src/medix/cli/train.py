"""`medix train`, `medix merge-lora` and `medix demo`: RL fine-tuning with the composite reward.

    medix train --config configs/medix-r1-8b-dapo.yaml trainer.max_steps=10
    medix demo --max-steps 30
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from medix.cli.common import SafeConsole, console, fmt, progress_bar, stdout_console
from medix.errors import MedixError

DEMO_HELD_OUT = 80  # every held-out question of the demo set (train/demo_data/heldout.jsonl)
ABLATION_STEPS = 12  # per arm of `medix demo --ablation`: four arms and five held-out passes within 25 min on 2 cores

# Its commands sit at the top level of `medix` (added to the app without a group name).
app = typer.Typer()


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="Training YAML (see configs/ and docs/training.md)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in output_dir from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete the previous run in output_dir first."),
    plan: bool = typer.Option(False, "--plan", help="Print each GPU's memory budget for this config and node, then "
                              "exit (1 when it does not fit); loads no weights, starts nothing."),
    accelerate_config: Optional[Path] = typer.Option(None, "--accelerate-config", help="--plan: the accelerate "
                                                     "config of the launch (sharding, processes); default: the "
                                                     "config's accelerate_config."),
    gpus: int = typer.Option(8, "--gpus", help="--plan: GPUs per node."),
    gpu_memory: float = typer.Option(79.6, "--gpu-memory", help="--plan: GiB per GPU as the driver reports it "
                                     "(an 80 GB H100 / A100: 79.6)."),  # 81,559 MiB = 79.6 GiB
    sharding: Optional[str] = typer.Option(None, "--sharding", help="--plan: zero3, zero2, zero1, fsdp or none "
                                           "(default: the accelerate config's, else none)."),
) -> None:
    """RL fine-tuning with the composite reward (GRPO / DAPO / GSPO on TRL). Extra args: key.sub=value overrides."""
    from medix.train.config import load_train_config
    from medix.train.run_folder import claim_output_dir

    if not plan and (accelerate_config or sharding):
        raise MedixError("--accelerate-config and --sharding describe the node for --plan: add --plan")
    cfg = load_train_config(config, list(ctx.args))
    if plan:
        from medix.train.launch import launch_shape
        from medix.train.plan import plan_training, render

        if accelerate_config is None and cfg.accelerate_config:  # the launch the config names
            accelerate_config = config.parent / cfg.accelerate_config
        result = plan_training(cfg, launch_shape(accelerate_config, gpus, gpu_memory, sharding), str(config))
        render(result, SafeConsole(width=160))
        if not result.fits:
            console.print(f"[bold red]does not fit:[/bold red] {escape(result.refusal())}", highlight=False,
                          soft_wrap=True)
            raise typer.Exit(1)
        return
    claim_output_dir(cfg.trainer, resume, overwrite, rank=int(os.environ.get("RANK", "0")))  # under accelerate
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
    max_steps: Optional[int] = typer.Option(None, help="RL steps (each: 1 question × 4 sampled answers); default 30, "
                                            f"{ABLATION_STEPS} per arm with --ablation."),
    eval_limit: int = typer.Option(DEMO_HELD_OUT, help="Held-out questions scored before and after (at most 80)."),
    output_dir: Optional[Path] = typer.Option(None, help="Where summary.json, rewards.png and the model go "
                                              "(default runs/demo; runs/demo-ablation with --ablation)."),
    max_completion_tokens: int = typer.Option(64, help="Answer length cap for rollouts and held-out answers."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Judge of accuracy_llm (training reward and held-out "
                                        "scores). Default: the CPU judge qwen2.5-coder-1.5b where installed "
                                        "(medix[cpu-judge]), else smollm2-135m (fast, near chance)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a previous training run in --output-dir."),
    ablation: bool = typer.Option(False, "--ablation", help="The reward ablation instead: one run per preset "
                                  "(composite, llm, embed, llm+embed) on the demo's settings, then `medix ablate "
                                  "report` (docs/training.md). Rerun to resume."),
) -> None:
    """The main job on the embedded default: train SmolLM2-135M on CPU, score held-out questions before/after."""
    from medix.train.demo import COLUMNS, claim_demo_dir, run_demo

    if ablation:
        return _demo_ablation(max_steps or ABLATION_STEPS, eval_limit, output_dir or Path("runs/demo-ablation"),
                              max_completion_tokens, judge, overwrite)
    max_steps, output_dir = max_steps or 30, output_dir or Path("runs/demo")
    claim_demo_dir(output_dir, overwrite)  # before any model loads: a previous train run is never clobbered

    with progress_bar(transient=False) as bar:
        task = bar.add_task("RL steps (SmolLM2-135M, CPU)", total=max_steps)

        def on_step(step: int, logs: dict) -> None:
            bar.update(task, completed=step, description=f"RL steps — reward {logs.get('reward') or 0:.3f}, "
                       f"format {logs.get('rewards/format/mean') or 0:.2f}")

        console.print("scoring held-out questions, then training; the first run converts the embedded models once "
                      "(SmolLM2 ~20 s, the CPU judge ~1 min)")
        summary = run_demo(max_steps, eval_limit, str(output_dir), max_completion_tokens, on_step=on_step,
                           judge_model=judge)
    table = Table(title=f"medix demo — {summary['before']['rows']} held-out questions, greedy answers",
                  caption="Research use only; not for clinical decisions.")
    for column in ("component", "before", "after", "change [95% CI]"):
        table.add_column(column, justify="left" if column == "component" else "right")
    for name in COLUMNS:
        table.add_row(name, fmt(summary["before"].get(name)), fmt(summary["after"].get(name)),
                      _change(summary["change"].get(name)))
    stdout_console(100).print(table)
    console.print(_judge_line(summary["judge"]), markup=False)  # it holds ".[cpu-judge]", not a Rich tag
    console.print(f"{summary['steps']} steps in {summary['train_runtime_s']:.0f}s; wrote {output_dir}/summary.json "
                  f"and {output_dir}/rewards.png")


def _demo_ablation(max_steps: int, eval_limit: int, output_dir: Path, max_completion_tokens: int,
                   judge: str | None, overwrite: bool) -> None:
    from medix.cli.ablate import run
    from medix.train import ablation
    from medix.train.demo import demo_settings

    if overwrite:
        ablation.clear(output_dir)  # the plan, arms, base and report of an earlier ablation; nothing else
    base, overrides = demo_settings(max_steps, eval_limit, max_completion_tokens, judge)
    plan = ablation.make_plan(None, overrides, list(ablation.DEFAULT_PRESETS), None, None, base=base)
    console.print(f"reward ablation on the demo: {len(plan.arms)} arms × {max_steps} steps, then "
                  f"{eval_limit} held-out questions per arm and for the untrained policy, one judge")
    run(ablation.claim(output_dir, plan), output_dir, window=5)


def _change(change: dict | None) -> str:
    """"+0.050 [-0.025, 0.125]": the paired per-question change; an interval holding 0 is within noise."""
    if not change:
        return "—"
    low, high = change["interval"] or (None, None)
    return f"{change['delta']:+.3f}" + (f" [{low:+.3f}, {high:+.3f}]" if low is not None else "")


def _judge_line(judge: dict) -> str:
    """"accuracy_llm judged by ...": the judge and its audit, so a constant accuracy_llm is explained."""
    dtype = f", {judge['dtype']}" if judge.get("dtype") else ""
    line = f"accuracy_llm judged by {judge['model']} ({judge['backend']}{dtype}, threshold {judge['threshold']})"
    audit = judge.get("audit")
    if not audit:
        return line + "; never audited: measure it with `medix judge audit`"
    from medix.judge.audit_store import describe_kinds

    oos = audit.get("out_of_sample")
    line += (f"; audit: {100 * audit['accuracy']:.0f}% accuracy on {audit['pairs']} labelled pairs "
             f"({describe_kinds(audit.get('kinds') or ['options'])})"
             + (f", {100 * oos['accuracy']:.0f}% out of sample ({oos['folds']}-fold)" if oos else "")
             + (f", AUC {audit['auc']:.2f}" if audit.get("auc") is not None else ""))
    if judge.get("warning"):
        line += (" — too weak for accuracy_llm to mean much; for a judge with signal: pip install -e "
                 "\".[cpu-judge]\" and run again: the CPU judge becomes the default (docs/judge.md)")
    return line
