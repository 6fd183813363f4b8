"""`medix ablate`: the paper's reward ablation — one training run per reward preset and seed, one evaluation
judge for every arm's held-out answers, and a side-by-side report (train/ablation.py, train/ablation_report.py).

    medix ablate --config my.yaml --output-dir runs/ablation trainer.max_steps=200      # train, score, report
    medix ablate --config my.yaml --output-dir OUT --print-launch                       # the cluster's lines
    medix ablate arm OUT llm-s42        # one arm (what each printed launch line runs); resumable
    medix ablate score OUT              # held-out answers of every finished arm and of the untrained policy
    medix ablate report OUT             # the table, OUT/ablation_report.json and OUT/ablation.png
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from medix.cli.common import console, fmt, stdout_console
from medix.errors import MedixError

app = typer.Typer()
ACTIONS = ("arm", "score", "report")
ALERTS = {"judge_embed_disagreement": "judge≠embed", "answer_length": "length"}  # the monitor's conditions


@app.command("ablate", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def ablate(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The training YAML every arm shares."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="The ablation folder: one "
                                              "<preset>-s<seed> run folder per arm, the plan and the report."),
    presets: str = typer.Option(",".join(("composite", "llm", "embed", "llm+embed")), "--presets",
                                help="Reward presets to train, comma-separated (docs/reward.md \"Presets\")."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds, comma-separated; default: the config's "
                                        "trainer.seed. Every preset is trained once per seed."),
    eval_judge: Optional[Path] = typer.Option(None, "--eval-judge", help="A judge YAML (JudgeConfig fields) that "
                                              "scores every arm's held-out answers; default: the training judge."),
    print_launch: bool = typer.Option(False, "--print-launch", help="Print the `accelerate launch` lines of the arms "
                                      "(one per arm, resumable), then scoring and report; run nothing."),
    accelerate_config: Optional[Path] = typer.Option(None, "--accelerate-config", help="--print-launch: the "
                                                     "accelerate config; default: the training config's."),
    window: int = typer.Option(5, "--window", min=1, help="report: steps in the trailing mean before volatility."),
) -> None:
    """Train one run per reward preset and seed, score them with one judge, report side by side. Extra args:
    key.sub=value overrides shared by every arm; or `arm OUT NAME`, `score OUT`, `report OUT`."""
    from medix.train import ablation

    args = list(ctx.args)
    if args and args[0] in ACTIONS:
        return _action(args[0], args[1:], window)
    if config is None or output_dir is None:
        raise MedixError("medix ablate needs --config (the training YAML) and --output-dir (the ablation folder); "
                         "or `medix ablate report OUT`")
    bad = [a for a in args if "=" not in a]
    if bad:
        raise MedixError(f"unexpected argument {bad[0]!r}: overrides are key.sub=value; actions: {', '.join(ACTIONS)}")
    plan = ablation.make_plan(config, args, ablation.parse_list(presets, "--presets"),
                              ablation.parse_list(seeds, "--seeds", int) if seeds else None, eval_judge)
    plan = ablation.claim(output_dir, plan)
    if print_launch:
        for line in ablation.launch_lines(plan, output_dir, str(accelerate_config) if accelerate_config else None):
            typer.echo(line)
        return
    run(plan, output_dir, window)


def run(plan, output_dir: Path, window: int) -> None:
    """Every arm in turn, then scoring and the report (also `medix demo --ablation`)."""
    from medix.train import ablation

    def on_arm(name: str, what: str) -> None:
        verb = {"finished": "finished earlier: skipped", "resume": "resuming from its last checkpoint",
                "start": "training", "scoring": "held-out answers, scored by the evaluation judge"}[what]
        console.print(f"[bold]{escape(name)}[/bold]: {verb}")

    ablation.run_ablation(plan, output_dir, on_arm)
    show_report(output_dir, window)


def _action(action: str, args: list[str], window: int) -> None:
    from medix.train import ablation

    wanted = {"arm": 2, "score": 1, "report": 1}[action]
    if len(args) != wanted:
        usage = {"arm": "OUT ARM (e.g. composite-s42)", "score": "OUT", "report": "OUT"}[action]
        raise MedixError(f"usage: medix ablate {action} {usage}")
    out = Path(args[0])
    plan = ablation.read_plan(out)
    if action == "arm":
        ablation.train_arm(plan, ablation.find_arm(plan, args[1]), out, rank=int(os.environ.get("RANK", "0")))
    elif action == "score":
        ablation.score_all(plan, out, lambda name, what: console.print(f"[bold]{escape(name)}[/bold]: scoring"))
    else:
        show_report(out, window)


def _interval(change: dict | None) -> str:
    if not change:
        return "—"
    low, high = change["interval"] or (None, None)
    return f"{change['delta']:+.3f}" + (f" [{low:+.3f}, {high:+.3f}]" if low is not None else "")


def show_report(out: Path, window: int = 5) -> dict:
    from medix.train.ablation_report import write

    report = write(out, window)
    table = Table(title=f"reward ablation — {escape(str(out))}", caption="accuracy_llm, overall: held-out greedy "
                  "answers, one judge, the composite weights; Δ: against the composite arm of the same seed, paired "
                  "95% CI; alerts: the reward-hacking monitor's, at the step each first fired")
    for column in ("arm", "steps", "reward (last)", "volatility", "alerts@step", "accuracy_llm", "Δ",
                   "overall", "Δ"):
        table.add_column(column, justify="left" if column in ("arm", "alerts@step") else "right",
                         no_wrap=column != "alerts@step")
    base = report.get("base")
    if base:
        table.add_row("untrained policy", "0", "—", "—", "—", fmt(base["held_out"].get("accuracy_llm")), "—",
                      fmt(base["held_out"].get("overall")), "—")
    for name, arm in report["arms"].items():
        held = arm.get("held_out") or {}
        vs = arm.get("vs_composite") or {}
        alerts = ", ".join(f"{ALERTS.get(k, k)}@{v}" for k, v in arm["alerts"].items()) or "none"
        steps = f"{arm['steps']}" + ("" if arm["state"] == "finished" else " (unfinished)")
        table.add_row(name, steps, fmt(arm["last"].get("reward")), fmt(arm["volatility"]), alerts,
                      fmt(held.get("accuracy_llm")), _interval(vs.get("accuracy_llm")), fmt(held.get("overall")),
                      _interval(vs.get("overall")))
    stdout_console(160).print(table)
    judge = report.get("judge") or {}
    if judge:
        console.print(f"held-out judge: {escape(str(judge.get('model')))} ({escape(str(judge.get('backend')))})",
                      highlight=False)
    if not report["same_settings"]:
        console.print("[bold yellow]warning:[/bold yellow] the arms' configs differ beyond preset, seed and folder "
                      "(arm.json shared_hash): they are not one ablation")
    console.print(f"wrote {escape(str(out))}/ablation_report.json and {escape(str(out))}/ablation.png")
    return report
