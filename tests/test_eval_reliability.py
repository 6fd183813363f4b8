"""`medix eval` against changed data, dead servers, unreadable images and a judge that always fails."""

import json

import pytest

from medix.config import JudgeConfig
from medix.errors import MedixError
from medix.eval.config import EvalConfig
from medix.eval.runner import run_eval, task_listing
from medix.testing.stub_server import JudgeStub, free_port


def _mirror(root, task, rows):
    (root / task).mkdir(parents=True, exist_ok=True)
    (root / task / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _cfg(tmp_path, policy_url, judge_url, **extra):
    judge = JudgeConfig(backend="openai", model="stub-judge", base_urls=[judge_url], timeout_s=2, backoff_s=0.01,
                        max_retries=1, max_consecutive_failures=4)
    settings = {"tasks": ["mmlu_anatomy"], "max_new_tokens": 16, "bootstrap": 0, "max_retries": 1,
                "protocol": "medix", **extra}
    return EvalConfig(model="stub-policy", backend="openai", base_url=policy_url, data_dir=str(tmp_path / "data"),
                      output_dir=str(tmp_path / "run"), judge=judge, **settings)


@pytest.fixture
def policy():
    with JudgeStub(role="policy", policy_answer="A") as server:
        yield server


def test_resume_after_the_data_changed_stops_or_refreshes(tmp_path, policy, stub):
    rows = [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0} for i in range(4)]
    _mirror(tmp_path / "data", "mmlu_anatomy", rows)
    run_eval(_cfg(tmp_path, policy.url, stub.url, phases=["generate"]))
    rows[1]["question"], rows[2]["question"] = "edited?", "also edited?"  # another mirror, same ids (row numbers)
    _mirror(tmp_path / "data", "mmlu_anatomy", rows)
    with pytest.raises(MedixError, match=r"task mmlu_anatomy: 2 stored record\(s\).*--refresh-changed"):
        run_eval(_cfg(tmp_path, policy.url, stub.url, phases=["generate"]))
    asked = policy.counts["requests"]
    run_eval(_cfg(tmp_path, policy.url, stub.url, refresh_changed=True))
    assert policy.counts["requests"] == asked + 2  # just the two changed items
    gens = [json.loads(line) for line in (tmp_path / "run" / "generations" / "mmlu_anatomy.jsonl").open()]
    assert sorted(g["question"].splitlines()[0] for g in gens) == ["also edited?", "edited?", "q0?", "q3?"]


def test_task_whose_every_judgment_failed_is_listed_and_refused_by_submit(tmp_path, policy):
    from medix.eval.submit import build_submission

    _mirror(tmp_path / "data", "mmlu_anatomy", [{"question": "q?", "choices": ["x", "y"], "answer": 1}] * 3)
    with JudgeStub(fail_500=1.0) as broken:
        result = run_eval(_cfg(tmp_path, policy.url, broken.url))
    entry = result.scores["tasks"]["mmlu_anatomy"]
    assert entry["score"] is None and entry["judge_failures"] == 3 and result.scores["unscored"] == ["mmlu_anatomy"]
    assert result.scores["overall"] is None and result.failures == {"judge/mmlu_anatomy": 3}
    with pytest.raises(MedixError, match="no scores for .*mmlu_anatomy"):
        build_submission(tmp_path / "run", allow_incomplete=False)


def test_dead_policy_server_stops_the_phase_in_seconds_keeping_what_was_done(tmp_path, stub):
    import time

    _mirror(tmp_path / "data", "mmlu_anatomy", [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0}
                                                for i in range(30)])
    dead = f"http://127.0.0.1:{free_port()}/v1"
    start = time.monotonic()
    with pytest.raises(MedixError, match="circuit open.*re-run the same command"):
        run_eval(_cfg(tmp_path, dead, stub.url, max_concurrency=2, timeout_s=1.0, max_retries=3))
    assert time.monotonic() - start < 30
    store = tmp_path / "run" / "generations" / "mmlu_anatomy.jsonl"
    assert not store.exists() or len(store.read_text().splitlines()) < 30  # unasked items left for the rerun


def test_unreadable_image_fails_that_item_only(tmp_path, policy, stub):
    root = tmp_path / "data"
    (root / "path_vqa" / "images").mkdir(parents=True)
    (root / "path_vqa" / "images" / "broken.jpg").write_text("not an image")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "path_vqa" / "images" / "ok.jpg")
    _mirror(root, "path_vqa", [{"image": "images/ok.jpg", "question": "what?", "answer": "A"},
                               {"image": "images/broken.jpg", "question": "what?", "answer": "A"},
                               {"image": "images/missing.jpg", "question": "what?", "answer": "A"}])
    result = run_eval(_cfg(tmp_path, policy.url, stub.url, tasks=["path_vqa"]))
    gens = {g["id"]: g for g in map(json.loads, (tmp_path / "run" / "generations" / "path_vqa.jsonl").open())}
    assert gens["0"]["raw"] is not None and gens["0"]["error"] is None
    assert str(root / "path_vqa" / "images" / "broken.jpg") in gens["1"]["error"]
    assert "not found" in gens["2"]["error"] and str(root / "path_vqa" / "images" / "missing.jpg") in gens["2"]["error"]
    assert result.failures["generate/path_vqa"] == 2 and result.scores["tasks"]["path_vqa"]["n"] == 1


def test_a_bad_row_skips_its_task_in_the_listing(tmp_path):
    _mirror(tmp_path, "mmlu_anatomy", [{"question": 12345, "choices": ["x", "y"], "answer": 9}])
    _mirror(tmp_path, "medqa", [{"id": "t0", "sent1": "q", "ending0": "a", "ending1": "b", "ending2": "c",
                                 "ending3": "d", "label": 0}])
    rows = {r["task"]: r for r in task_listing(str(tmp_path))}
    assert rows["medqa"]["items"] == 1
    assert rows["mmlu_anatomy"]["items"] is None and "line 1" in rows["mmlu_anatomy"]["note"]
    assert "12345" in rows["mmlu_anatomy"]["note"] and rows["medqa"]["bad_rows"] == 0


def test_ctrl_c_stops_at_once_with_one_line(tmp_path, stub):
    """Ctrl-C mid-generation ends the run with 130 and one line, without waiting for the requests in
    flight. The policy server holds every request (until the client hangs up, at most 600 s), so the run
    cannot finish before the signal; the signal is sent once the policy has received a request (generation
    is under way). The bounds are generous for a loaded machine and far below the held requests' 600 s."""
    import signal
    import subprocess
    import sys
    import time

    _mirror(tmp_path / "data", "mmlu_anatomy", [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0}
                                                for i in range(20)])
    with JudgeStub(role="policy", hang=1.0, hang_s=600) as held:
        proc = subprocess.Popen([sys.executable, "-m", "medix", "eval", "run", "--model", "p", "--tasks", "mmlu_anatomy",
                                 "--data-dir", str(tmp_path / "data"), "-o", str(tmp_path / "run"), "--backend",
                                 "openai", "--base-url", held.url, "--judge-backend", "openai", "--judge-url", stub.url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 180  # start-up (imports) on a busy machine
            while held.counts["requests"] == 0 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert held.counts["requests"] > 0, f"the run never asked the policy (exit {proc.poll()})"
            proc.send_signal(signal.SIGINT)
            start = time.monotonic()
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert time.monotonic() - start < 60 and proc.returncode == 130, (proc.returncode, err[-2000:])
    assert "interrupted" in err and "run the same command again to resume" in " ".join(err.split())
    assert "Traceback" not in err


def test_an_output_dir_that_cannot_be_written_stops_before_any_work(tmp_path, stub):
    _mirror(tmp_path / "data", "mmlu_anatomy", [{"question": "q?", "choices": ["x", "y"], "answer": 0}])
    (tmp_path / "taken").write_text("a file, not a folder")
    with JudgeStub(role="policy") as policy:
        cfg = _cfg(tmp_path, policy.url, stub.url).model_copy(update={"output_dir": str(tmp_path / "taken" / "run")})
        with pytest.raises(MedixError, match=r"--output-dir .*taken/run cannot be written: .*taken is not a directory"):
            run_eval(cfg)
        assert policy.counts["requests"] == 0
