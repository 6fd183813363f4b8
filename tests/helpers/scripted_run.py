"""Helpers for training tests on scripted completions: a tiny text policy, a short prompt, known answers."""

from __future__ import annotations

import json

from medix.testing.scripted import script_rollouts
from medix.testing.tiny import tiny_text_lm
from medix.train.config import load_train_config
from medix.train.trainer import build_trainer


def write_rows(path, n: int, solution: str = "Radial nerve") -> str:
    rows = [{"id": f"s{i}", "problem": f"Question {i}: which nerve is injured in wrist drop?", "solution": solution,
             "images": []} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def question(prompt: str) -> int:
    """The row number a scripted writer is asked about ("Question 3: ..." → 3)."""
    return int(prompt.split("Question ")[-1].split(":")[0])


def scripted_run(tmp_path, judge_url: str, writer, rows: int = 8, *overrides: str, output: str = "run"):
    """A dapo run of a tiny random-weight policy whose completions `writer(prompt, k)` chooses; G = 4,
    two groups per step, the loopback judge at `judge_url`."""
    (tmp_path / "prompt.jinja").write_text("{{ problem }}")  # a short prompt keeps the CPU step fast
    cfg = load_train_config(None, [
        "algorithm.recipe=dapo", f"data.train={write_rows(tmp_path / 'd.jsonl', rows)}",
        f"data.prompt_template={tmp_path / 'prompt.jinja'}", f"trainer.output_dir={tmp_path / output}",
        "trainer.max_steps=1", "trainer.save_steps=100", "rollout.num_generations=4",
        "trainer.per_device_train_batch_size=8", "rollout.max_completion_tokens=32",
        "reward.judge.backend=openai", "reward.judge.model=stub", f"reward.judge.base_urls=['{judge_url}']",
        "reward.judge.cache=false", "reward.judge.max_retries=0", "algorithm.dynamic_sampling.max_attempts=2",
        "algorithm.dynamic_sampling.on_exhausted=pad", *overrides])
    model, tokenizer = tiny_text_lm()
    run = build_trainer(cfg, model=model, processing=tokenizer)
    script_rollouts(run.trainer, writer)
    return run


def record(obj, name: str, into: list, inputs: bool = False) -> None:
    """Append every result of `obj.name(...)` (or its first argument, with inputs=True) to `into`."""
    original = getattr(obj, name)

    def recorded(*args, **kwargs):
        out = original(*args, **kwargs)
        into.append(args[0] if inputs else out)
        return out

    setattr(obj, name, recorded)


def train(run):
    try:
        return run.trainer.train()
    finally:
        run.trainer.reward_funcs[0].composite.close()
