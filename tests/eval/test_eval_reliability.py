"""`medix eval` against changed data, dead servers, unreadable images and a judge that always fails."""

import json

import pytest

from helpers.eval_data import stub_eval, stub_judge, write_jsonl, write_task
from helpers.servers import reply_app
from medix.judge.config import JudgeConfig
from medix.errors import MedixError
from medix.eval.config import EvalConfig
from medix.eval.runner import run_eval, task_listing
from medix.testing.stub_server import JudgeStub, LoopbackServer, free_port


def _cfg(tmp_path, policy_url, judge_url, **extra):
    return stub_eval(tmp_path, policy_url, stub_judge(judge_url, max_consecutive_failures=4), **extra)


def test_resume_after_the_data_changed_stops_or_refreshes(tmp_path, policy, stub):
    rows = [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0} for i in range(4)]
    write_task(tmp_path / "data", "mmlu_anatomy", rows)
    run_eval(_cfg(tmp_path, policy.url, stub.url, phases=["generate"]))
    rows[1]["question"], rows[2]["question"] = "edited?", "also edited?"  # another mirror, same ids (row numbers)
    write_task(tmp_path / "data", "mmlu_anatomy", rows)
    with pytest.raises(MedixError, match=r"task mmlu_anatomy: 2 stored record\(s\).*--refresh-changed"):
        run_eval(_cfg(tmp_path, policy.url, stub.url, phases=["generate"]))
    asked = policy.counts["requests"]
    run_eval(_cfg(tmp_path, policy.url, stub.url, refresh_changed=True))
    assert policy.counts["requests"] == asked + 2  # just the two changed items
    gens = [json.loads(line) for line in (tmp_path / "run" / "generations" / "mmlu_anatomy.jsonl").open()]
    assert sorted(g["question"].splitlines()[0] for g in gens) == ["also edited?", "edited?", "q0?", "q3?"]


def test_task_whose_every_judgment_failed_is_listed_and_refused_by_submit(tmp_path, policy):
    from medix.eval.submit import build_submission

    write_task(tmp_path / "data", "mmlu_anatomy", [{"question": "q?", "choices": ["x", "y"], "answer": 1}] * 3)
    with JudgeStub(fail_500=1.0) as broken:
        result = run_eval(_cfg(tmp_path, policy.url, broken.url))
    entry = result.scores["tasks"]["mmlu_anatomy"]
    assert entry["score"] is None and entry["judge_failures"] == 3 and result.scores["unscored"] == ["mmlu_anatomy"]
    assert result.scores["overall"] is None and result.failures == {"judge/mmlu_anatomy": 3}
    with pytest.raises(MedixError, match="no scores for .*mmlu_anatomy"):
        build_submission(tmp_path / "run", allow_incomplete=False)


def test_dead_policy_server_stops_the_phase_in_seconds_keeping_what_was_done(tmp_path, stub):
    import time

    write_task(tmp_path / "data", "mmlu_anatomy", [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0}
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
    write_task(root, "path_vqa", [{"image": "images/ok.jpg", "question": "what?", "answer": "A"},
                               {"image": "images/broken.jpg", "question": "what?", "answer": "A"},
                               {"image": "images/missing.jpg", "question": "what?", "answer": "A"}])
    result = run_eval(_cfg(tmp_path, policy.url, stub.url, tasks=["path_vqa"]))
    gens = {g["id"]: g for g in map(json.loads, (tmp_path / "run" / "generations" / "path_vqa.jsonl").open())}
    assert gens["0"]["raw"] is not None and gens["0"]["error"] is None
    assert str(root / "path_vqa" / "images" / "broken.jpg") in gens["1"]["error"]
    assert "not found" in gens["2"]["error"] and str(root / "path_vqa" / "images" / "missing.jpg") in gens["2"]["error"]
    assert result.failures["generate/path_vqa"] == 2 and result.scores["tasks"]["path_vqa"]["n"] == 1


def test_a_bad_row_skips_its_task_in_the_listing(tmp_path):
    write_task(tmp_path, "mmlu_anatomy", [{"question": 12345, "choices": ["x", "y"], "answer": 9}])
    write_task(tmp_path, "medqa", [{"id": "t0", "sent1": "q", "ending0": "a", "ending1": "b", "ending2": "c",
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

    write_task(tmp_path / "data", "mmlu_anatomy", [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0}
                                                for i in range(20)])
    with JudgeStub(role="policy", hang=1.0, hang_s=600) as held:
        proc = subprocess.Popen([sys.executable, "-m", "medix", "eval", "run", "--model", "p", "--tasks",
                                 "mmlu_anatomy", "--data-dir", str(tmp_path / "data"), "-o", str(tmp_path / "run"),
                                 "--backend", "openai", "--base-url", held.url, "--judge-backend", "openai",
                                 "--judge-url", stub.url],
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
    write_task(tmp_path / "data", "mmlu_anatomy", [{"question": "q?", "choices": ["x", "y"], "answer": 0}])
    (tmp_path / "taken").write_text("a file, not a folder")
    with JudgeStub(role="policy") as policy:
        cfg = _cfg(tmp_path, policy.url, stub.url).model_copy(update={"output_dir": str(tmp_path / "taken" / "run")})
        with pytest.raises(MedixError, match=r"--output-dir .*taken/run cannot be written: .*taken is not a directory"):
            run_eval(cfg)
        assert policy.counts["requests"] == 0


VLM_ROWS = {
    "rad_vqa image null": ("rad_vqa", {"image": None, "question": "what?", "answer": "a"}),
    "rad_vqa no image column": ("rad_vqa", {"question": "what?", "answer": "a"}),
    "slake_vqa images not unpacked": ("slake_vqa", {"img_name": "xmlab1/source.jpg", "question": "what?",
                                                    "answer": "a", "q_lang": "en", "qid": 1}),
}


@pytest.mark.parametrize("case", list(VLM_ROWS))
@pytest.mark.parametrize("allow", [False, True], ids=["default", "allow-text-only"])
def test_vlm_items_without_images_fail_visibly_unless_allowed(tmp_path, monkeypatch, policy, stub, case, allow):
    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path / "cache"))  # no unpacked archive from an earlier run
    task, row = VLM_ROWS[case]
    write_jsonl(tmp_path / "data" / task / "test.jsonl", [{**row, "qid": i} for i in range(3)])
    result = run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32), tasks=[task],
                                allow_text_only=allow))
    entry = result.scores["tasks"][task]
    out = tmp_path / "run"
    md, html = (out / "scores.md").read_text(), (out / "report.html").read_text()
    assert entry["image_missing"] == 3
    if allow:
        assert entry["asked_without_image"] == 3 and entry["generation_failures"] == 0
        assert "TEXT-ONLY (--allow-text-only)" in md and "TEXT-ONLY" in html and policy.counts["requests"] == 3
    else:
        assert entry["generation_failures"] == 3 and result.failures["generate/" + task] == 3
        assert "Images missing" in md and "Images missing" in html and policy.counts["requests"] == 0
        gens = (out / "generations" / f"{task}.jsonl").read_text()
        assert "image missing" in gens and "--allow-text-only" in gens


def test_a_lone_surrogate_in_a_reply_is_replaced_and_the_item_recorded(tmp_path):
    data = tmp_path / "data" / "mmlu_anatomy" / "test.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text(json.dumps({"question": "q?", "choices": ["x", "y"], "answer": 0}) + "\n")
    body = ('{"id": "r", "object": "chat.completion", "created": 0, "model": "m", "choices": [{"index": 0, '
            '"message": {"role": "assistant", "content": "<answer>A \\ud800</answer>"}, "finish_reason": "stop"}]}')
    with LoopbackServer(reply_app(raw_json=body)) as policy, JudgeStub() as judge:
        cfg = EvalConfig(model="m", backend="openai", base_url=policy.url, data_dir=str(tmp_path / "data"),
                         output_dir=str(tmp_path / "run"), tasks=["mmlu_anatomy"], bootstrap=0, max_retries=1,
                         judge=JudgeConfig(backend="openai", model="stub", base_urls=[judge.url], cache=False))
        result = run_eval(cfg)
    [record] = [json.loads(line) for line in (tmp_path / "run" / "generations" / "mmlu_anatomy.jsonl").open()]
    assert record["raw"] == "<answer>A \ufffd</answer>" and record["error"] is None
    assert result.scores is not None


def _judgments(tmp_path) -> list[dict]:
    files = list((tmp_path / "run" / "judgments").glob("*/mmlu_anatomy.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].open()]


def test_data_changed_after_judging_is_judged_again_on_resume(tmp_path, failing_policy, stub):
    """All four items judged with answer "A. x" right (the stub judge: YES iff it equals the reference); then
    items 1 and 2 change (reference "B. y") and the run resumes with --refresh-changed: those two are generated
    and judged again, so the policy's "A. x" is now wrong for them and accuracy is 2 right of 4 = 0.5
    (reusing the stale verdicts would keep it at 4/4 = 1.0)."""
    rows = [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0} for i in range(4)]
    write_task(tmp_path / "data", "mmlu_anatomy", rows)
    first = run_eval(stub_eval(tmp_path, failing_policy.url, stub_judge(stub.url, timeout_s=5)))
    assert first.scores["tasks"]["mmlu_anatomy"]["score"] == 1.0  # "A. x" is the reference of every item
    before = {j["id"]: j for j in _judgments(tmp_path)}
    for i in (1, 2):
        rows[i].update(question=f"edited {i}?", answer=1)  # same ids (row numbers), reference now "B. y"
    write_task(tmp_path / "data", "mmlu_anatomy", rows)
    asked = stub.counts["requests"]
    result = run_eval(stub_eval(tmp_path, failing_policy.url, stub_judge(stub.url, timeout_s=5),
                                refresh_changed=True))
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
