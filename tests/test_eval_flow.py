"""The whole eval flow against loopback stubs: a simulated policy server and a simulated judge.

Faults (500s, timeouts, garbage verdicts), judge-identity checks, submission zip, compare, kill-and-resume.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from medix.config import JudgeConfig
from medix.errors import MedixError
from medix.eval.compare import compare_runs
from medix.eval.config import EvalConfig
from medix.eval.runner import run_eval
from medix.eval.submit import build_submission, validate_submission
from medix.testing.stub_server import JudgeStub


def _data(tmp_path, n=6):
    """Tiny mirrors: an MCQ task whose answer is always 'A', an open VQA task and a report task."""
    root = tmp_path / "data"
    rows = {
        "mmlu_anatomy": [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0 if i % 2 else 1} for i in range(n)],
        "path_vqa": [{"image": None, "question": f"what {i}?", "answer": "a" if i % 3 else "b",
                      "answer_type": "OPEN"} for i in range(n)],
        "iu_xray_summarization": [{"uid": i, "report": f"findings {i}", "summary": "a"} for i in range(n)],
    }
    for task, task_rows in rows.items():
        (root / task).mkdir(parents=True)
        (root / task / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in task_rows))
    return root


def _cfg(tmp_path, policy, judge, out="run", **extra):
    judge_cfg = JudgeConfig(backend="openai", model="stub-judge", base_urls=[judge.url], max_tokens=32,
                            timeout_s=extra.pop("judge_timeout", 2.0), backoff_s=0.01, max_retries=2)
    # medix protocol: the stub judge compares the <answer> block (paper would show it the whole reply)
    # path_vqa rows have no image here: asked text-only on purpose (the reports say so; see test_reliability)
    settings = {"tasks": ["all"], "max_new_tokens": 32, "bootstrap": 100, "max_retries": 1, "protocol": "medix",
                "allow_text_only": True, **extra}
    return EvalConfig(model="stub-policy", backend="openai", base_url=policy.url, data_dir=str(tmp_path / "data"),
                      output_dir=str(tmp_path / out), judge=judge_cfg, **settings)


@pytest.fixture
def policy():
    with JudgeStub(role="policy", policy_answer="A") as server:
        yield server


def test_stub_run_scores_reports_and_submits(tmp_path, policy, stub):
    _data(tmp_path)
    result = run_eval(_cfg(tmp_path, policy, stub))
    out = tmp_path / "run"
    assert not result.failures and "medqa" in result.skipped and "no " in result.skipped["medqa"]
    s = json.loads((out / "scores.json").read_text())
    # the policy always answers "A": MCQ reference "A. x" on odd rows → the stub says YES to "a" only when equal
    assert s["tasks"]["path_vqa"]["score"] == pytest.approx(4 / 6)  # reference "a" on 4 of 6 rows
    assert s["tasks"]["iu_xray_summarization"]["score"] == 1.0  # rubric {"score": 5} every round
    assert s["tasks"]["path_vqa"]["breakdowns"]["answer_type"]["OPEN"]["n"] == 6
    assert set(s["tasks"]) == {"mmlu_anatomy", "path_vqa", "iu_xray_summarization"} and s["overall"] is not None
    judged = [json.loads(x) for x in next((out / "judgments").iterdir()).joinpath("path_vqa.jsonl").read_text().splitlines()]
    assert all(len(j["rounds"]) == 3 and j["judge"]["model"] == "stub-judge" for j in judged)
    assert stub.counts["requests"] == 18 * 3 + 1  # three rounds per sample, one conversation each; one probe
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and "Research use only" in html and (out / "scores.png").stat().st_size
    with pytest.raises(MedixError, match="no scores for .* paper task"):
        build_submission(out)  # three tasks of seventeen: refused unless asked for
    zip_path = build_submission(out, allow_incomplete=True)
    assert zip_path.name.endswith("_stub_policy_submission.zip")
    assert validate_submission(zip_path)["judgments"] == 12  # mmlu_anatomy + path_vqa (the stand-in is left out)
    assert "stub_policy/stub_policy_score.txt" in zipfile.ZipFile(zip_path).namelist()
    same = compare_runs(out, out)
    assert same["overall"]["diff"] == 0 and same["tasks"]["path_vqa"]["ci"] == [0.0, 0.0]


def test_faults_are_retried_counted_and_never_loop(tmp_path, policy):
    _data(tmp_path, n=20)
    with JudgeStub(fail_500=0.1, garbage=0.1, hang=0.05, hang_s=3.0, seed=3) as flaky:
        result = run_eval(_cfg(tmp_path, policy, flaky, judge_timeout=0.5, tasks=["path_vqa"]))
        assert flaky.counts["500"] and flaky.counts["garbage"] and flaky.counts["hang"]
    s = json.loads((tmp_path / "run" / "scores.json").read_text())
    task = s["tasks"]["path_vqa"]
    assert task["n"] + task["judge_failures"] == 20 and task["parse_failures"] > 0
    with JudgeStub(fail_500=1.0) as dead:  # a judge that always fails: every sample recorded failed, run ends
        result = run_eval(_cfg(tmp_path, policy, dead, out="dead", tasks=["path_vqa"]))
    assert result.failures == {"judge/path_vqa": 20}
    assert dead.counts["requests"] == 20 * 3 + 1  # 1 try + 2 retries of round 1, then the sample is given up; 1 probe


def test_a_different_model_or_judge_is_refused(tmp_path, policy, stub):
    _data(tmp_path, n=2)
    run_eval(_cfg(tmp_path, policy, stub, tasks=["path_vqa"]))
    with pytest.raises(MedixError, match="new --output-dir"):
        run_eval(_cfg(tmp_path, policy, stub, tasks=["path_vqa"]).model_copy(update={"model": "other"}))
    other = _cfg(tmp_path, policy, stub, tasks=["path_vqa"])
    other.judge.model = "another-judge"
    with pytest.raises(MedixError, match="--new-judge"):
        run_eval(other)
    run_eval(other, new_judge=True)  # judged again into a second folder, old verdicts untouched
    assert len(list((tmp_path / "run" / "judgments").iterdir())) == 2


def _cli(tmp_path, policy_url, judge_url, out):
    return [sys.executable, "-m", "medix", "eval", "run", "--model", "stub-policy", "--tasks", "path_vqa",
            "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / out), "--backend", "openai",
            "--base-url", policy_url, "--judge-backend", "openai", "--judge-model", "stub-judge",
            "--judge-url", judge_url, "--max-new-tokens", "16", "--protocol", "medix", "--allow-text-only"]


def test_sigkill_then_the_same_command_gives_identical_scores(tmp_path):
    _data(tmp_path, n=120)
    env = {**os.environ, "MEDIX_JUDGE_API_KEY": "x"}
    with JudgeStub(role="policy", latency_s=0.05, max_inflight=4) as policy, JudgeStub(latency_s=0.02) as judge:
        subprocess.run(_cli(tmp_path, policy.url, judge.url, "clean"), check=True, env=env, capture_output=True)
        for phase_file in ("generations/path_vqa.jsonl", "judgments"):
            proc = subprocess.Popen(_cli(tmp_path, policy.url, judge.url, "killed"), env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            target = tmp_path / "killed" / phase_file
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                    target.is_file() and target.stat().st_size > 2000 if target.suffix else
                    target.is_dir() and any(p.stat().st_size > 2000 for p in target.rglob("*.jsonl"))):
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)  # mid-phase: first during generation, then during judging
            proc.wait()
        subprocess.run(_cli(tmp_path, policy.url, judge.url, "killed"), check=True, env=env, capture_output=True)
    clean = json.loads((tmp_path / "clean" / "scores.json").read_text())
    killed = json.loads((tmp_path / "killed" / "scores.json").read_text())
    assert killed == clean
    for path in (tmp_path / "killed").rglob("*.jsonl"):
        ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
        assert len(ids) == len(set(ids)) == 120, path
