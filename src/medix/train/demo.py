"""`medix demo`: RL on CPU with the embedded models — SmolLM2-135M-Instruct learns the MediX-R1 answer
format and answers on a bundled set of short clinical questions (text-only), with the embedded judge and
embedder. Scores a held-out slice before and after, prints a table, writes summary.json and a plot.
summary.json names the judge that scored accuracy_llm and its audit (`medix judge audit`).

    medix demo                                   # defaults: 30 steps; the CPU judge where installed
    medix demo --judge smollm2-135m              # the fast embedded judge (near chance: see its audit)
    medix demo --max-steps 2 --eval-limit 4 --output-dir runs/demo-smoke
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from medix.judge.audit_store import judge_summary
from medix.errors import MedixError
from medix.models import SMOLLM2, default_judge
from medix.rewards import composite as reward
from medix.stats import paired_change
from medix.train.config import load_train_config
from medix.train.run_folder import claim_output_dir
from medix.train.trainer import build_trainer

log = logging.getLogger(__name__)
DEMO_DATA = Path(__file__).parent / "demo_data"
COLUMNS = ("overall", *reward.names())  # the before/after table: overall, then the component table's order


# Two worked examples as earlier chat turns and a compact text-only prompt: from the instruction alone
# SmolLM2-135M almost never writes <think>/<answer>, and a policy that never does earns no reward to
# learn from. Measured on 16 sampled answers: ~half well formed with these, ~1 in 16 without.
FEW_SHOT = [
    {"problem": "Which organ pumps blood around the body?",
     "response": "<think>The heart is a muscular pump that circulates blood.</think> <answer>Heart</answer>"},
    {"problem": "Which vitamin deficiency causes night blindness?",
     "response": "<think>Vitamin A is needed for rhodopsin in the retina.</think> <answer>Vitamin A</answer>"},
]


def demo_settings(max_steps: int, eval_limit: int, max_completion_tokens: int = 64,
                  judge_model: str | None = None) -> tuple[dict, list[str]]:
    """(base config, overrides) of the demo's training run, without its output folder (`medix demo --ablation`
    trains every arm on them)."""
    # Text-only samples use the text-only weighting (modality off, judge and embed renormalised).
    # lr is higher than the paper's 1e-6 because the demo has tens of steps, not thousands, and the
    # embedding reward is continuous (cosine) so a 135M policy that rarely hits 0.8 still gets a signal.
    data = {"few_shot": FEW_SHOT, "prompt_template": str(DEMO_DATA / "prompt.jinja"),
            "system_prompt": "You are a concise medical assistant."}
    return {"data": data}, [
        "algorithm.recipe=dapo", f"data.train={DEMO_DATA / 'train.jsonl'}", f"data.eval={DEMO_DATA / 'heldout.jsonl'}",
        f"data.eval_limit={eval_limit}", f"model.name={SMOLLM2}",
        f"reward.judge.model={judge_model or default_judge()}",
        "rollout.num_generations=4", "reward.embed_continuous=true",
        "trainer.per_device_eval_batch_size=16",  # held-out answers 16 at a time: ~30% faster than 8 on 2 cores
        f"rollout.max_completion_tokens={max_completion_tokens}", "trainer.per_device_train_batch_size=4",
        "trainer.learning_rate=2e-5", f"trainer.max_steps={max_steps}",
        f"trainer.save_steps={max(max_steps, 1)}", "trainer.save_total_limit=1", "trainer.logging_steps=1",
        "algorithm.dynamic_sampling.max_attempts=2", "algorithm.dynamic_sampling.on_exhausted=pad",
        "trainer.lr_scheduler_type=linear",  # tens of steps: decay to 0 as before the paper's constant default
    ]


def demo_config(max_steps: int, eval_limit: int, output_dir: str, max_completion_tokens: int = 64,
                judge_model: str | None = None):
    base, overrides = demo_settings(max_steps, eval_limit, max_completion_tokens, judge_model)
    return load_train_config(None, base=base, overrides=[*overrides, f"trainer.output_dir={output_dir}"])


def step_metrics(log_history: list[dict]) -> list[dict]:
    """One row per training step: loss, overall reward and each component's mean."""
    rows = []
    for entry in log_history:
        if "loss" not in entry:
            continue
        row = {"step": entry["step"], "loss": entry["loss"], "overall": entry.get("reward")}
        for name in reward.names():
            row[name] = entry.get(f"rewards/{name}/mean")
        row.update({k.split("/")[-1]: v for k, v in entry.items() if k.startswith("dynamic_sampling/")})
        row.update({k: v for k, v in entry.items() if k.startswith("monitor/")})
        rows.append(row)
    return rows


# The reward-hacking panel: shares (left axis) and the answer-length ratio (right axis), train/monitor.py.
MONITOR_SHARES = {"monitor/judge_accepts_embed_rejects": "judge yes, embedding no",
                  "monitor/embed_accepts_judge_rejects": "embedding yes, judge no",
                  "monitor/format_reward_share": "reward share from format",
                  "monitor/guard/verdict_word": "verdict-word answers"}


def _lines(ax, rows: list[dict], names: dict[str, str], **style) -> list:
    steps, drawn = [r["step"] for r in rows], []
    for key, label in names.items():
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            drawn += ax.plot(steps, [float("nan") if v is None else v for v in values], marker=".", label=label,
                             **style)
    return drawn


def plot(rows: list[dict], path: Path) -> None:
    """Two panels: the reward components per step, and the reward-hacking monitor's signals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    _lines(top, rows, {name: name for name in COLUMNS})  # a component never logged (modality, text-only) is left out
    top.set(ylabel="mean reward", title="medix demo: reward components per step", ylim=(-0.02, 1.02))
    top.legend(loc="best")
    right = bottom.twinx()
    right.set_ylabel("answer length / first steps' mean")
    drawn = _lines(bottom, rows, MONITOR_SHARES) + _lines(
        right, rows, {"monitor/answer_length_ratio": "answer length ratio (right)"}, color="black", linestyle="--")
    bottom.set(xlabel="step", ylabel="share of completions / reward", title="reward-hacking monitor",
               ylim=(-0.02, 1.02))
    if drawn:
        bottom.legend(drawn, [line.get_label() for line in drawn], loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class _StepReporter(TrainerCallback):
    """Hands each logged step's metrics to `on_step` (the CLI draws a progress bar with them)."""

    def __init__(self, on_step: Callable[[int, dict], None]):
        self.on_step = on_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.on_step(state.global_step, logs)


def claim_demo_dir(output_dir: str | Path, overwrite: bool = False) -> None:
    """The output rule of `medix train`, with one exception: a previous demo's folder (its summary.json has
    the demo's held-out examples) is replaced, so `medix demo` can be run again as the README shows. A folder
    holding any other training run is refused unless `overwrite`; then only that run's files go."""
    out = Path(output_dir)
    summary = out / "summary.json"
    try:
        previous_demo = summary.is_file() and "held_out_examples" in json.loads(summary.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
        previous_demo = False
    trainer = demo_config(1, 1, str(out)).trainer
    try:
        claim_output_dir(trainer, overwrite=overwrite or previous_demo)
    except MedixError as err:
        raise MedixError(str(err).replace("--resume to continue it from its last checkpoint, ", "")
                         .replace("trainer.output_dir=NEW_FOLDER", "--output-dir NEW_FOLDER")) from None


def run_demo(max_steps: int = 30, eval_limit: int = 80, output_dir: str = "runs/demo",
             max_completion_tokens: int = 64, on_step: Callable[[int, dict], None] | None = None,
             judge_model: str | None = None) -> dict:
    cfg = demo_config(max_steps, eval_limit, output_dir, max_completion_tokens, judge_model)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = build_trainer(cfg)
    if on_step is not None:  # replace the Trainer's own tqdm bar and printed log dicts
        run.trainer.remove_callback(ProgressCallback)
        run.trainer.remove_callback(PrinterCallback)
        run.trainer.add_callback(_StepReporter(on_step))
    try:
        before = run.validator.run(run.trainer.model)
        before_rows = run.validator.last
        result = run.trainer.train()
        after = run.validator.run(run.trainer.model)
        run.trainer.save_model(str(out / "final"))
    finally:
        run.trainer.reward_funcs[0].composite.close()
    rows = step_metrics(run.trainer.state.log_history)
    summary = {
        "steps": result.global_step, "train_runtime_s": result.metrics.get("train_runtime"),
        "config": cfg.model_dump(mode="json"), "data": run.data_report, "judge": judge_summary(cfg.reward.judge),
        "before": before, "after": after, "change": paired_change(before_rows, run.validator.last, list(COLUMNS)),
        "per_step": rows,
        "held_out_examples": {"before": before_rows[:3], "after": run.validator.last[:3]},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    plot(rows, out / "rewards.png")
    return summary
