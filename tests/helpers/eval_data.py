"""Tiny benchmark mirrors, judge-audit pairs and eval configs against loopback servers (stub policy, stub judge)."""

from __future__ import annotations

import json
from pathlib import Path

from medix.judge.config import JudgeConfig
from medix.eval.config import EvalConfig

FAIL = "FAILME"  # a question holding this word gets HTTP 500 from the `failing_policy` server, every try


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_task(root: Path, task: str, rows: list[dict]) -> Path:
    """A mirror of one task as `medix eval --data-dir root` reads it: root/TASK/test.jsonl. Returns root."""
    write_jsonl(root / task / "test.jsonl", rows)
    return root


def mcq_rows(n: int) -> list[dict]:
    return [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0} for i in range(n)]


def four_items_one_failing(tmp_path: Path) -> None:
    """mmlu_anatomy in tmp_path/data: four items, the third holding FAIL."""
    rows = [{"question": f"q{i}?" if i != 2 else f"q{i} {FAIL}?", "choices": ["x", "y"], "answer": 0}
            for i in range(4)]
    write_task(tmp_path / "data", "mmlu_anatomy", rows)


def write_pairs(folder: Path, labels=(True, False)) -> Path:
    """folder/pairs.jsonl for `medix judge audit --pairs`: a right candidate per True, a wrong one per False."""
    return write_jsonl(folder / "pairs.jsonl", [{"reference": "pneumonia", "candidate": "pneumonia" if y else "edema",
                                                 "label": y} for y in labels])


def stub_judge(url: str, **settings) -> JudgeConfig:
    """The openai judge `stub-judge` at `url`: a 2 s timeout, one retry after 10 ms, unless `settings` say else."""
    return JudgeConfig(**{"backend": "openai", "model": "stub-judge", "base_urls": [url], "timeout_s": 2,
                          "backoff_s": 0.01, "max_retries": 1, **settings})


def stub_eval(tmp_path: Path, policy_url: str, judge: JudgeConfig, **extra) -> EvalConfig:
    """`medix eval run` of `stub-policy` at `policy_url` on mmlu_anatomy (medix protocol, 16 tokens, one retry,
    no bootstrap) with the data in tmp_path/data and the run in tmp_path/run; `extra` overrides any setting."""
    settings = {"tasks": ["mmlu_anatomy"], "max_new_tokens": 16, "bootstrap": 0, "max_retries": 1,
                "protocol": "medix", **extra}
    return EvalConfig(model="stub-policy", backend="openai", base_url=policy_url, data_dir=str(tmp_path / "data"),
                      output_dir=str(tmp_path / "run"), judge=judge, **settings)
