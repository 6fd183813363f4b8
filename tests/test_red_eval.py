"""Eval-flow tests that each guard one property a one-line bug could break unnoticed (issue 17, item 7):

- a judgment made for an older version of an item is not reused after the data changed (resume);
- `protocol: paper` reaches the score phase: a failed item counts 0 in the denominator there;
- `medix eval run` exits 1 when one sample failed, even though every task is scored.

Loopback servers only: a policy that fails on questions carrying a marker, and a judge that says YES to
everything or compares the answer letter. Expected scores are worked out from the protocol's rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from red_servers import reply_server, user_text

from medix.config import JudgeConfig
from medix.eval.config import EvalConfig
from medix.eval.runner import run_eval
from medix.testing.stub_server import policy_reply

FAIL = "FAILME"  # a question holding this word gets HTTP 500 from the policy server, every try


@pytest.fixture
def policy():
    """Answers "A. x" (option A, written as the task's reference is) in the MediX-R1 format, except HTTP 500
    for a question holding FAIL."""
    with reply_server(lambda body: None if FAIL in user_text(body) else policy_reply("A. x")) as server:
        yield server


@pytest.fixture
def yes_judge():
    """Calls every answer correct: YES to a binary prompt, score 1 to a prompt asking for a JSON score."""
    with reply_server(lambda body: '{"score": 1}' if '{\\"score\\"' in user_text(body) else "YES") as server:
        yield server


def _mirror(root: Path, rows: list[dict]) -> None:
    (root / "mmlu_anatomy").mkdir(parents=True, exist_ok=True)
    (root / "mmlu_anatomy" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _cfg(tmp_path, policy_url: str, judge_url: str, **extra) -> EvalConfig:
    judge = JudgeConfig(backend="openai", model="stub-judge", base_urls=[judge_url], timeout_s=5, backoff_s=0.01,
                        max_retries=1)
    settings = {"tasks": ["mmlu_anatomy"], "max_new_tokens": 16, "bootstrap": 0, "max_retries": 1,
                "protocol": "medix", **extra}
    return EvalConfig(model="stub-policy", backend="openai", base_url=policy_url, data_dir=str(tmp_path / "data"),
                      output_dir=str(tmp_path / "run"), judge=judge, **settings)


def _judgments(tmp_path) -> list[dict]:
    files = list((tmp_path / "run" / "judgments").glob("*/mmlu_anatomy.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].open()]


def test_data_changed_after_judging_is_judged_again_on_resume(tmp_path, policy, stub):
    """All four items judged with answer "A. x" right (the stub judge: YES iff it equals the reference); then
    items 1 and 2 change (reference "B. y") and the run resumes with --refresh-changed: those two are generated
    and judged again, so the policy's "A. x" is now wrong for them and accuracy is 2 right of 4 = 0.5
    (reusing the stale verdicts would keep it at 4/4 = 1.0)."""
    rows = [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0} for i in range(4)]
    _mirror(tmp_path / "data", rows)
    first = run_eval(_cfg(tmp_path, policy.url, stub.url))
    assert first.scores["tasks"]["mmlu_anatomy"]["score"] == 1.0  # "A. x" is the reference of every item
    before = {j["id"]: j for j in _judgments(tmp_path)}
    for i in (1, 2):
        rows[i].update(question=f"edited {i}?", answer=1)  # same ids (row numbers), reference now "B. y"
    _mirror(tmp_path / "data", rows)
    asked = stub.counts["requests"]
    result = run_eval(_cfg(tmp_path, policy.url, stub.url, refresh_changed=True))
    # only the two changed items went to the judge again (besides its one-token logprobs probe), each asked
    # as many rounds as the judge identity records
    asked_about = [json.dumps(b["messages"]) for b in stub.settings.bodies[asked:]]
    asked_about = [m for m in asked_about if "Reference answer" in m]
    assert len(asked_about) == 2 * before["0"]["judge"]["rounds"]
    assert all('\\"B. y\\"' in m for m in asked_about)
    after = {j["id"]: j for j in _judgments(tmp_path)}
    assert len(after) == len(_judgments(tmp_path)) == 4  # one judgment per item, none left over
    changed = {i for i in after if after[i]["prompt_sha256"] != before[i]["prompt_sha256"]}
    assert len(changed) == 2 and all(after[i]["normalized"] == 0.0 for i in changed)
    assert all(after[i] == before[i] for i in after if i not in changed)  # unchanged items: verdicts reused
    assert result.scores["tasks"]["mmlu_anatomy"]["score"] == 0.5


def _four_items_one_failing(tmp_path) -> None:
    rows = [{"question": f"q{i}?" if i != 2 else f"q{i} {FAIL}?", "choices": ["x", "y"], "answer": 0}
            for i in range(4)]
    _mirror(tmp_path / "data", rows)


@pytest.mark.parametrize("protocol,score,counted_as", [
    # paper: every item is in the denominator, the failed generation scores 0 → (1 + 1 + 0 + 1) / 4
    ("paper", 0.75, "0 (in the denominator)"),
    # medix: failures are left out → 3 judged items, all right → 3 / 3
    ("medix", 1.0, "excluded"),
])
def test_the_protocol_decides_how_a_failed_item_is_scored(tmp_path, policy, yes_judge, protocol, score, counted_as):
    _four_items_one_failing(tmp_path)
    result = run_eval(_cfg(tmp_path, policy.url, yes_judge.url, protocol=protocol))
    assert result.failures["generate/mmlu_anatomy"] == 1
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    entry = scores["tasks"]["mmlu_anatomy"]
    assert (scores["protocol"], scores["failures_counted_as"]) == (protocol, counted_as)
    assert (entry["score"], entry["n"], entry["generation_failures"]) == (score, 4 if protocol == "paper" else 3, 1)
    assert scores["overall"] == score
    from medix.eval.compare import compare_runs  # `eval compare` counts items as the task score does

    same = compare_runs(tmp_path / "run", tmp_path / "run")["tasks"]["mmlu_anatomy"]
    assert (same["a"], same["n"], same["diff"]) == (score, 4 if protocol == "paper" else 3, 0.0)


def _medix(tmp_path, policy_url: str, judge_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "medix", "eval", "run", "--model", "stub-policy", "--tasks", "mmlu_anatomy",
            "--protocol", "medix", "--data-dir", str(tmp_path / "data"), "-o", str(tmp_path / "run"),
            "--backend", "openai", "--base-url", policy_url, "--judge-backend", "openai", "--judge-model", "stub-judge",
            "--judge-url", judge_url, "--max-new-tokens", "16"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)


def test_eval_run_exits_1_when_one_sample_failed_though_every_task_is_scored(tmp_path, policy, yes_judge):
    _four_items_one_failing(tmp_path)
    done = _medix(tmp_path, policy.url, yes_judge.url)
    assert done.returncode == 1, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert "failed samples" in said and "generate/mmlu_anatomy" in said
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert scores["unscored"] == [] and scores["tasks"]["mmlu_anatomy"]["score"] == 1.0  # scored: 3 of 3 right
    # the same command with nothing failing exits 0
    clean = tmp_path / "clean"
    _mirror(clean / "data", [{"question": "q?", "choices": ["x", "y"], "answer": 0}])
    ok = _medix(clean, policy.url, yes_judge.url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
