"""Run logs: sample completions with every reward component (completions.jsonl), metrics (metrics.jsonl),
and validation with the composite reward every N steps, keeping the best checkpoint."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from transformers import TrainerCallback

log = logging.getLogger(__name__)


class CompletionsLogger(TrainerCallback):
    """At each logging step, append up to `per_step` completions with their components to a JSONL file."""

    def __init__(self, trainer, path: Path, per_step: int):
        self.trainer, self.path, self.per_step = trainer, path, per_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        records = self.trainer.completion_records
        if not records or not state.is_world_process_zero:
            records.clear()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for record in records[-self.per_step:] if self.per_step else []:
                fh.write(json.dumps({**record, "logged_at_step": state.global_step}, ensure_ascii=False) + "\n")
        records.clear()


class JsonMetricsLogger(TrainerCallback):
    """`report_to: [json]`: one JSON object per log call in metrics.jsonl."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in logs.items()}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": state.global_step, **clean}) + "\n")


class ValidationCallback(TrainerCallback):
    """Every `eval_steps`: greedy answers on the held-out rows, scored with the composite reward.

    Logs eval/<component> and saves the policy to OUTPUT/best when eval/overall improves. Runs on every process:
    under ZeRO-3 / FSDP both generating and saving are collectives (`Validator.run` shards the rows and gathers
    the results, so every process takes the same decision); OUTPUT/best/best.json is written by the first.
    """

    def __init__(self, trainer, validator, eval_steps: int, output_dir: Path):
        self.trainer, self.validator, self.eval_steps, self.output_dir = trainer, validator, eval_steps, output_dir
        self.best: float | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.eval_steps:
            return
        summary = self.validator.run(self.trainer.model_wrapped, self.trainer.accelerator, self.trainer)
        metrics = {f"eval/{k}": v for k, v in summary.items() if isinstance(v, (int, float))}
        self.trainer.log(metrics)
        overall = summary.get("overall")
        if overall is not None and (self.best is None or overall > self.best):
            self.best = overall
            best_dir = self.output_dir / "best"
            self.trainer.save_model(str(best_dir))  # every process: gathers ZeRO-3 / FSDP shards to save
            if state.is_world_process_zero:
                (best_dir / "best.json").write_text(json.dumps({"step": state.global_step, **summary}, indent=2))
                log.info("new best eval/overall %.4f at step %d → %s", overall, state.global_step, best_dir)
