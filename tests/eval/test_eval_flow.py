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

from helpers import PASSWORD, REPO, SECRET
from helpers.cli_runner import cli, medix
from helpers.eval_data import four_items_one_failing, mcq_rows, stub_eval, stub_judge, write_jsonl, write_task
from helpers.servers import echo_auth_server
from medix.judge.config import JudgeConfig
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
        write_task(root, task, task_rows)
    return root


def _cfg(tmp_path, policy, judge, out="run", **extra):
    judge_cfg = JudgeConfig(backend="openai", model="stub-judge", base_urls=[judge.url], max_tokens=32,
                            timeout_s=extra.pop("judge_timeout", 2.0), backoff_s=0.01, max_retries=2)
    # medix protocol: the stub judge compares the <answer> block (paper would show it the whole reply)
    # path_vqa rows have no image here: asked text-only on purpose (the reports say so; see test_eval_reliability.py)
    settings = {"tasks": ["all"], "max_new_tokens": 32, "bootstrap": 100, "max_retries": 1, "protocol": "medix",
                "allow_text_only": True, **extra}
    return EvalConfig(model="stub-policy", backend="openai", base_url=policy.url, data_dir=str(tmp_path / "data"),
                      output_dir=str(tmp_path / out), judge=judge_cfg, **settings)


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
    judged = [json.loads(x)
              for x in next((out / "judgments").iterdir()).joinpath("path_vqa.jsonl").read_text().splitlines()]
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


@pytest.mark.slow
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


def test_a_key_echoed_in_a_normal_reply_reaches_no_file(tmp_path, monkeypatch, stub):
    monkeypatch.setenv("MEDIX_POLICY_KEY", SECRET)
    write_jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", mcq_rows(2))
    with echo_auth_server() as echo:
        run_eval(stub_eval(tmp_path, echo.url, stub_judge(stub.url, max_tokens=32), api_key_env="MEDIX_POLICY_KEY"))
    zip_path = build_submission(tmp_path / "run", allow_incomplete=True)
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any("[redacted]" in p.read_text(errors="replace") for p in written if p.suffix == ".jsonl")
    leaks = [p.name for p in written if SECRET.encode() in p.read_bytes()]
    with zipfile.ZipFile(zip_path) as zf:
        leaks += [n for n in zf.namelist() if SECRET.encode() in zf.read(n)]
    assert not leaks


def test_a_basic_auth_header_echoed_back_reaches_no_record(tmp_path):
    import base64

    data = tmp_path / "data" / "mmlu_anatomy" / "test.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text(json.dumps({"question": "q?", "choices": ["x", "y"], "answer": 0}) + "\n")
    basic = base64.b64encode(f"medix:{PASSWORD}".encode()).decode()
    with echo_auth_server() as echo, JudgeStub() as judge:
        url = echo.url.replace("http://", f"http://medix:{PASSWORD}@")
        run_eval(EvalConfig(model="m", backend="openai", base_url=url, data_dir=str(tmp_path / "data"),
                            output_dir=str(tmp_path / "run"), tasks=["mmlu_anatomy"], bootstrap=0, max_retries=1,
                            judge=JudgeConfig(backend="openai", model="stub", base_urls=[judge.url], cache=False)))
    raw = (tmp_path / "run" / "generations" / "mmlu_anatomy.jsonl").read_text()
    assert "your header was Basic [redacted]" in raw
    leaks = [p.name for p in (tmp_path / "run").rglob("*") if p.is_file()
             and (basic.encode() in p.read_bytes() or PASSWORD.encode() in p.read_bytes())]
    assert not leaks


def test_compare_says_what_it_leaves_out(tmp_path):
    data = tmp_path / "data" / "mmlu_anatomy" / "test.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("".join(json.dumps({"question": f"q{i}?", "choices": ["x", "y"], "answer": 0}) + "\n"
                            for i in range(3)))
    with JudgeStub(role="policy", policy_answer="A") as policy, JudgeStub() as judge:
        for name, limit in (("a", 3), ("b", 2)):
            run_eval(EvalConfig(model="m", backend="openai", base_url=policy.url, tasks=["mmlu_anatomy"],
                                data_dir=str(tmp_path / "data"), output_dir=str(tmp_path / name), limit=limit,
                                bootstrap=0, judge=JudgeConfig(backend="openai", model="stub",
                                                               base_urls=[judge.url], cache=False)))
    result = compare_runs(tmp_path / "a", tmp_path / "b")
    assert result["left_out"] == ["mmlu_anatomy: 2 shared items compared (1 only in A, 0 only in B)"]
    code, output, _ = cli("eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert code == 0 and "not compared" in output and "1 only in A" in " ".join(output.split())


def _medix(tmp_path, policy_url: str, judge_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return medix("eval", "run", "--model", "stub-policy", "--tasks", "mmlu_anatomy", "--protocol", "medix",
                 "--data-dir", str(tmp_path / "data"), "-o", str(tmp_path / "run"), "--backend", "openai",
                 "--base-url", policy_url, "--judge-backend", "openai", "--judge-model", "stub-judge",
                 "--judge-url", judge_url, "--max-new-tokens", "16", env=env, timeout=300)


@pytest.mark.slow
def test_eval_run_exits_1_when_one_sample_failed_though_every_task_is_scored(tmp_path, failing_policy, yes_judge):
    four_items_one_failing(tmp_path)
    done = _medix(tmp_path, failing_policy.url, yes_judge.url)
    assert done.returncode == 1, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert "failed samples" in said and "generate/mmlu_anatomy" in said
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert scores["unscored"] == [] and scores["tasks"]["mmlu_anatomy"]["score"] == 1.0  # scored: 3 of 3 right
    # the same command with nothing failing exits 0
    clean = tmp_path / "clean"
    write_task(clean / "data", "mmlu_anatomy", [{"question": "q?", "choices": ["x", "y"], "answer": 0}])
    ok = _medix(clean, failing_policy.url, yes_judge.url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
