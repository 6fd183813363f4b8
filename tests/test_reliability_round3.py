"""Issue "nothing silent, nothing lost, no secret written, round 3": each test is a row of docs/reliability.md.

Loopback servers, tiny files, in-process CLI calls; the one model load is the embedded SmolLM2 judge (item 10).
New names are imported inside the tests, so this file also runs against the code before the change (to see
every case fail there).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import warnings
import zipfile
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from medix.config import JudgeConfig
from cli_runner import cli
from red_servers import echo_auth_server, headers_then_nothing
from medix.errors import MedixError
from medix.eval.config import EvalConfig
from medix.eval.runner import run_eval
from medix.testing.stub_server import JudgeStub, LoopbackServer, free_port

SECRET = "sk-or-v1-0123456789abcdef0123456789abcdef"
PASSWORD = "hunter2-pw"


def _jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pairs(tmp_path: Path, labels=(True, False)) -> Path:
    return _jsonl(tmp_path / "pairs.jsonl", [{"reference": "pneumonia", "candidate": "pneumonia" if y else "edema",
                                              "label": y} for y in labels])


def _judge_cfg(url: str, **extra) -> JudgeConfig:
    return JudgeConfig(**{"backend": "openai", "model": "stub-judge", "base_urls": [url], "timeout_s": 2,
                          "backoff_s": 0.01, "max_retries": 1, "max_tokens": 32, **extra})


def _eval_cfg(tmp_path: Path, policy_url: str, judge_url: str, **extra) -> EvalConfig:
    settings = {"tasks": ["mmlu_anatomy"], "max_new_tokens": 16, "bootstrap": 0, "max_retries": 1,
                "protocol": "medix", **extra}
    return EvalConfig(model="stub-policy", backend="openai", base_url=policy_url, data_dir=str(tmp_path / "data"),
                      output_dir=str(tmp_path / "run"), judge=_judge_cfg(judge_url), **settings)


def _mcq_rows(n: int) -> list[dict]:
    return [{"question": f"q{i}?", "choices": ["x", "y"], "answer": 0} for i in range(n)]


@pytest.fixture
def policy():
    with JudgeStub(role="policy", policy_answer="A") as server:
        yield server


# --- 2 and 9: one output rule for every command --------------------------------------------------------------

OUTPUT_CASES = {
    # name: (argv builder, the file that must survive unchanged or None, message)
    "audit --calibrate an existing file": (
        lambda p, t: ["judge", "audit", "--pairs", str(p), "--calibrate", str(t / "old.yaml")], "old.yaml",
        "already exists; pass --overwrite"),
    "audit --calibrate = --pairs": (
        lambda p, t: ["judge", "audit", "--pairs", str(p), "--calibrate", str(p)], "pairs.jsonl", "is the input file"),
    "audit --json = --pairs": (
        lambda p, t: ["judge", "audit", "--pairs", str(p), "--json", str(p)], "pairs.jsonl", "is the input file"),
    "audit --calibrate a folder": (
        lambda p, t: ["judge", "audit", "--pairs", str(p), "--calibrate", str(t)], None, "is a directory"),
    "contamination -o = --train": (
        lambda p, t: ["eval", "contamination", "--train", str(t / "train.jsonl"), "--data-dir", str(t / "data"),
                      "-o", str(t / "train.jsonl")], "train.jsonl", "is the input file"),
    "contamination -o an existing file": (
        lambda p, t: ["eval", "contamination", "--train", str(t / "train.jsonl"), "--data-dir", str(t / "data"),
                      "-o", str(t / "old.yaml")], "old.yaml", "already exists; pass --overwrite"),
    "contamination -o a folder": (
        lambda p, t: ["eval", "contamination", "--train", str(t / "train.jsonl"), "--data-dir", str(t / "data"),
                      "-o", str(t / "data")], None, "is a directory"),
    "reward score -o /dev/full --overwrite": (
        lambda p, t: ["reward", "score", "-i", str(t / "rows.jsonl"), "-o", "/dev/full", "--overwrite"], None,
        "not a regular file"),
    "eval submit -o a file": (
        lambda p, t: ["eval", "submit", str(t / "run"), "-o", str(t / "old.yaml")], "old.yaml", "is a file; give a folder"),
}


def _no_judge(monkeypatch) -> None:
    """Building a Judge fails the case. The modules that import `Judge` by name are imported first, so none of
    them keeps the stand-in after this test (a later test would meet it)."""
    import medix.cli.judge
    import medix.eval.runner
    import medix.judge
    import medix.rewards.components  # noqa: F401

    monkeypatch.setattr(medix.judge, "Judge", lambda *a, **k: pytest.fail("the judge was built before the check"))


@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_outputs_are_never_clobbered_and_bad_paths_are_named(tmp_path, monkeypatch, case):
    _no_judge(monkeypatch)
    pairs = _pairs(tmp_path)
    (tmp_path / "old.yaml").write_text("mine\n")
    _jsonl(tmp_path / "train.jsonl", [{"problem": "a b c", "solution": "<X_RAY> d"}])
    _jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", _mcq_rows(2))
    _jsonl(tmp_path / "rows.jsonl", [{"response": "<answer>x</answer>", "solution": "x"}])
    build, keep, message = OUTPUT_CASES[case]
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    code, output, error = cli(*build(pairs, tmp_path))
    assert code != 0 and error is not None and message in str(error), (code, output, error)
    if keep:
        assert (tmp_path / keep).read_bytes() == before[tmp_path / keep]


def test_demo_into_a_previous_training_run_is_refused(tmp_path):
    from medix.train.demo import claim_demo_dir

    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 4}\n')
    (run / "summary.json").write_text('{"global_step": 4}')
    with pytest.raises(MedixError, match="holds a previous run .*--overwrite"):
        claim_demo_dir(run)
    assert (run / "checkpoint-4").is_dir() and (run / "metrics.jsonl").read_text() == '{"step": 4}\n'
    demo = tmp_path / "demo"  # the demo's own previous output is replaced, as the README reruns it
    demo.mkdir()
    (demo / "summary.json").write_text(json.dumps({"held_out_examples": {}}))
    (demo / "metrics.jsonl").write_text("{}\n")
    claim_demo_dir(demo)
    assert not (demo / "metrics.jsonl").exists()


def test_read_only_json_output_of_an_audit_is_refused_before_the_judge(tmp_path, monkeypatch):
    import medix.files

    _no_judge(monkeypatch)

    monkeypatch.setattr(medix.files.tempfile, "TemporaryFile",
                        lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    code, _, error = cli("judge", "audit", "--pairs", str(_pairs(tmp_path)), "--json", str(tmp_path / "ro" / "a.json"))
    assert code != 0 and "is not writable (Permission denied)" in str(error)


# --- 9: tracebacks and a hang -----------------------------------------------------------------------------------

def test_audit_on_pairs_of_one_label_and_a_smaller_audit_keeps_the_cached_one(tmp_path, monkeypatch, stub):
    from medix.judge.audit import cached_audit

    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path / "cache"))
    args = ["judge", "audit", "--judge-backend", "openai", "--judge-model", "stub", "--judge-url", stub.url,
            "--rounds", "1"]
    code, output, error = cli(*args, "--pairs", str(_pairs(tmp_path, [True, False] * 4)))
    assert code == 0, (output, error)
    (tmp_path / "small").mkdir()
    code, output, error = cli(*args, "--pairs", str(_pairs(tmp_path / "small", [True, True])))
    assert code == 0, (output, error)  # AUC undefined: said, no traceback
    config = JudgeConfig(backend="openai", model="stub", base_urls=[stub.url])
    assert cached_audit(config)["pairs"] == 8  # the 2-pair audit did not replace the 8-pair one


def test_json_rows_that_are_not_objects_are_named(tmp_path):
    from medix.data.datasets import read_records

    path = tmp_path / "rows.json"
    path.write_text(json.dumps(["a question", "another"]))
    with pytest.raises(MedixError, match=r"rows.json, row 1: expected a JSON object, got str"):
        list(read_records(path))


def test_resume_falls_back_to_the_last_complete_checkpoint(tmp_path, caplog):
    from medix.train.config import TrainerConfig
    from medix.train.run_folder import claim_output_dir

    out = tmp_path / "run"
    for step, complete in ((2, True), (4, False)):
        (out / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (out / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    trainer = TrainerConfig(output_dir=str(out))
    claim_output_dir(trainer, resume=True)
    assert trainer.resume_from_checkpoint == str(out / "checkpoint-2")
    assert "checkpoint-4 lacks trainer_state.json" in caplog.text


def test_ui_on_a_busy_port_is_refused_before_serving(monkeypatch):
    import medix.web.app

    monkeypatch.setattr(medix.web.app, "build_app", lambda *a, **k: pytest.fail("built the app on a busy port"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, output, error = cli("ui", "--port", str(port))
    assert code != 0 and f"--port {port}" in str(error) and "already in use" in str(error)
    assert "serving" not in output


def test_a_server_that_sends_headers_then_nothing_costs_one_bound_per_item(tmp_path):
    from medix.chat_client import ChatClient

    with headers_then_nothing() as server:
        client = ChatClient(server.url, timeout_s=0.4, max_retries=3, backoff_s=0.01, max_consecutive_failures=0)
        start = time.monotonic()
        result = asyncio.run(client.chat([{"role": "user", "content": "x"}], model="m", deadline_s=0.8))
        elapsed = time.monotonic() - start
    assert not result.ok and result.attempts == 2 and elapsed < 1.4, (result, elapsed)  # not 4 × 0.4 s
    assert "gave up after 0.8 s (every try together)" in result.error
    with headers_then_nothing() as server:  # the eval's default bound: 2 × timeout_s per item, all tries
        _jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", _mcq_rows(1))
        start = time.monotonic()
        result = run_eval(_eval_cfg(tmp_path, server.url, server.url, timeout_s=0.4, max_retries=3,
                                    phases=["generate"]))
        elapsed = time.monotonic() - start
    (record,) = [json.loads(x) for x in (tmp_path / "run" / "generations" / "mmlu_anatomy.jsonl").open()]
    assert result.failures == {"generate/mmlu_anatomy": 1} and record["attempts"] <= 2  # not 4
    assert elapsed < 3.0 and "gave up after 0.8 s" in record["error"]  # 4 tries of 0.4 s + backoff: > 3.3 s


def test_a_redirect_to_another_origin_is_refused(stub):
    from starlette.responses import RedirectResponse

    from medix.chat_client import ChatClient

    async def moved(request: Request):
        return RedirectResponse(f"{stub.url}/chat/completions", status_code=307)

    app = Starlette(routes=[Route("/v1/chat/completions", moved, methods=["POST"])])
    with LoopbackServer(app) as server:
        client = ChatClient(server.url, timeout_s=2, max_retries=2, backoff_s=0.01)
        result = asyncio.run(client.chat([{"role": "user", "content": "x"}], model="m"))
    assert stub.counts["requests"] == 0 and result.attempts == 1  # not followed, not retried
    assert "redirected (307) to another origin" in result.error and stub.url.split("/v1")[0] in result.error


# --- 6: no secret written ----------------------------------------------------------------------------------------

def test_a_key_echoed_in_a_normal_reply_reaches_no_file(tmp_path, monkeypatch, stub):
    from medix.eval.submit import build_submission

    monkeypatch.setenv("MEDIX_POLICY_KEY", SECRET)
    _jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", _mcq_rows(2))
    with echo_auth_server() as echo:
        run_eval(_eval_cfg(tmp_path, echo.url, stub.url, api_key_env="MEDIX_POLICY_KEY"))
    zip_path = build_submission(tmp_path / "run", allow_incomplete=True)
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any("[redacted]" in p.read_text(errors="replace") for p in written if p.suffix == ".jsonl")
    leaks = [p.name for p in written if SECRET.encode() in p.read_bytes()]
    with zipfile.ZipFile(zip_path) as zf:
        leaks += [n for n in zf.namelist() if SECRET.encode() in zf.read(n)]
    assert not leaks


def test_url_credentials_reach_no_record_message_or_dump(tmp_path):
    from medix.judge import Judge, JudgeRequest
    from medix.judge.core import one_turn_identity

    url = f"http://medix:{PASSWORD}@127.0.0.1:{free_port()}/v1"
    config = _judge_cfg(url, cache=False, timeout_s=0.2, backoff_s=0.2, max_consecutive_failures=2, max_retries=2)
    with Judge(config) as judge:
        verdicts = judge.judge([JudgeRequest(candidate=f"a{i}", reference="b") for i in range(10)])
    texts = [v.error or "" for v in verdicts]
    assert any("circuit open" in t for t in texts) and not any(PASSWORD in t for t in texts)
    dumps = [config.model_dump_json(), json.dumps(one_turn_identity(config)),
             EvalConfig(model="m", base_url=url, judge=config).model_dump_json()]
    assert all(PASSWORD not in d for d in dumps) and "127.0.0.1" in dumps[1]


def test_infer_names_a_dead_server_without_its_password():
    code, output, error = cli("infer", "--question", "Diagnosis?", "--timeout", "0.2",
                              "--server", f"http://medix:{PASSWORD}@127.0.0.1:{free_port()}/v1")
    assert code != 0 and error is not None and PASSWORD not in str(error) and PASSWORD not in output


# --- 1: a VLM item without its image is a failed item ------------------------------------------------------------

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
    _jsonl(tmp_path / "data" / task / "test.jsonl", [{**row, "qid": i} for i in range(3)])
    result = run_eval(_eval_cfg(tmp_path, policy.url, stub.url, tasks=[task], allow_text_only=allow))
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


# --- 4: records are validated when read, and only the current items are scored -----------------------------------

EDITS = {
    "normalized 5 in a binary task": (lambda r: {**r, "score": 5.0, "normalized": 5.0}, "field 'normalized'"),
    "normalized as text": (lambda r: {**r, "normalized": "yes"}, "field 'normalized': Input should be a valid number"),
    "score and normalized disagree": (lambda r: {**r, "score": 0.0, "normalized": 1.0},
                                      "field 'record': Value error, normalized 1.0 does not match score 0.0"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_an_edited_judgment_is_named_never_scored(tmp_path, policy, stub, case):
    _jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", _mcq_rows(3))
    run_eval(_eval_cfg(tmp_path, policy.url, stub.url))
    (file,) = (tmp_path / "run" / "judgments").rglob("mmlu_anatomy.jsonl")
    records = [json.loads(x) for x in file.read_text().splitlines()]
    edit, message = EDITS[case]
    records[1] = edit(records[1])
    _jsonl(file, records)
    (tmp_path / "run" / "scores.json").unlink()
    with pytest.raises(MedixError, match=rf"mmlu_anatomy.jsonl, row 2, {message}"):
        run_eval(_eval_cfg(tmp_path, policy.url, stub.url, phases=["score"]))
    assert not (tmp_path / "run" / "scores.json").exists()


def test_a_judgment_without_an_error_key_is_read_with_its_default(tmp_path, policy, stub):
    _jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", _mcq_rows(3))
    run_eval(_eval_cfg(tmp_path, policy.url, stub.url))
    (file,) = (tmp_path / "run" / "judgments").rglob("mmlu_anatomy.jsonl")
    _jsonl(file, [{k: v for k, v in json.loads(x).items() if k != "error"} for x in file.read_text().splitlines()])
    result = run_eval(_eval_cfg(tmp_path, policy.url, stub.url, phases=["score"]))
    assert result.scores["tasks"]["mmlu_anatomy"]["n"] == 3


@pytest.mark.parametrize("change", ["rows deleted from the data", "a smaller --limit"])
def test_only_the_current_items_are_scored(tmp_path, policy, stub, change):
    _jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", _mcq_rows(4))
    run_eval(_eval_cfg(tmp_path, policy.url, stub.url))
    extra = {}
    if change == "a smaller --limit":
        extra["limit"] = 3
    else:
        _jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", _mcq_rows(3))
    result = run_eval(_eval_cfg(tmp_path, policy.url, stub.url, **extra))
    assert result.scores["tasks"]["mmlu_anatomy"]["n"] == 3  # not 4 from 3 rows


# --- 5: the judge's endpoint is in its identity; one run per output folder ----------------------------------------

def test_the_judge_identity_names_its_server_without_credentials():
    from medix.judge.core import one_turn_identity

    a = one_turn_identity(_judge_cfg("http://10.0.0.1:8001/v1"))
    b = one_turn_identity(_judge_cfg("http://10.0.0.2:8001/v1"))
    same_with_password = one_turn_identity(_judge_cfg(f"http://u:{PASSWORD}@10.0.0.1:8001/v1"))
    assert a != b  # two servers: two verdict caches, two judgment folders
    assert a == same_with_password and PASSWORD not in json.dumps(same_with_password)
    local = one_turn_identity(JudgeConfig(backend="local"))
    assert "endpoints" not in local  # in-process judges (and the shipped audits keyed by them) are unchanged


def test_reward_judging_after_switching_the_judge_server_asks_the_new_one(tmp_path):
    from medix.judge import Judge, JudgeRequest

    requests = [JudgeRequest(candidate="pneumonia", reference="pneumonia")]
    with JudgeStub() as first, JudgeStub() as second:
        for server in (first, second):
            with Judge(_judge_cfg(server.url, cache_path=str(tmp_path / "cache.sqlite"))) as judge:
                (verdict,) = judge.judge(requests)
            assert verdict.ok
        assert first.counts["requests"] == 1 and second.counts["requests"] == 1  # not the first's cached verdict


def test_a_second_run_on_a_held_output_folder_names_the_holder(tmp_path, policy, stub):
    from medix.files import hold_folder

    _jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", _mcq_rows(2))
    with hold_folder(tmp_path / "run", "medix eval run --model other"):
        with pytest.raises(MedixError, match=rf"in use by pid {os.getpid()} .*medix eval run --model other"):
            run_eval(_eval_cfg(tmp_path, policy.url, stub.url))
    assert policy.counts["requests"] == 0
    run_eval(_eval_cfg(tmp_path, policy.url, stub.url))  # released: the same command runs
    assert policy.counts["requests"] == 2


# --- 8: `eval submit --check` recomputes from the records ---------------------------------------------------------

def _tamper(records: list[dict], evals: list[dict], case: str) -> tuple[list[dict], list[dict], list[str] | None]:
    """The submission after `case`; the score lines when the case rewrites them (None = the honest ones)."""
    first = next(i for i, r in enumerate(evals) if r["id"].startswith("medqa_"))
    if case == "a binary score of 5":
        evals[first] = {**evals[first], "evaluation": {"score": 5}}
    elif case == "score.txt claims 100%":
        evals[first] = {**evals[first], "evaluation": {"score": 0}}  # the honest table would say medqa < 1
    elif case == "a duplicate id":
        records.append(records[first])
        evals.append(evals[first])
    elif case == "an item removed":
        del records[first], evals[first]
    elif case == "responses differ between files":
        evals[first] = {**evals[first], "response": "something else"}
    elif case == "a null response":
        records[first] = {**records[first], "response": None}
        evals[first] = {**evals[first], "response": None}
    elif case == "2 items per task":
        keep = lambda r: int(r["id"].rsplit("_", 1)[1]) < 2  # noqa: E731
        records, evals = [r for r in records if keep(r)], [r for r in evals if keep(r)]
    return records, evals, None


TAMPERED = {
    "a binary score of 5": "outside the task's scale",
    "score.txt claims 100%": "claims medqa 1.0000; the records give 0.9992",
    "a duplicate id": "appears twice",
    "an item removed": "incomplete for 1 paper task.*medqa",
    "responses differ between files": "response differ between",
    "a null response": "not text",
    "2 items per task": "incomplete for 12 paper task",
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_submission_check_fails_on_tampering(tmp_path, case):
    from medix.eval.registry import registry
    from medix.eval.submit import paper_tasks, validate_submission, zip_name

    sizes = {t: getattr(registry()[t], "test_items", None) or 2 for t in paper_tasks()}  # whole test splits
    records = [{"id": f"{t}_{n}", "question": "q", "answer": "a", "response": "r", "answer_idx": None}
               for t, size in sizes.items() for n in range(size)]
    rubric = {"mimic_cxr_report_generation", "mimic_cxr_report_summarization"}
    evals = [{**r, "evaluation": {"score": 5 if r["id"].rsplit("_", 1)[0] in rubric else 1}} for r in records]
    records, evals, _ = _tamper(records, evals, case)
    tasks = dict.fromkeys(r["id"].rsplit("_", 1)[0] for r in records)
    lines = [f"{t:<36} {1:>10.4f} {100:>13.2f}" for t in tasks] + [f"{'Overall':<36} {1:>10.4f} {100:>13.2f}"]
    path = tmp_path / zip_name("M")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("M/M.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        zf.writestr("M/M_eval.jsonl", "".join(json.dumps(r) + "\n" for r in evals))
        zf.writestr("M/M_score.txt", "Model: M\n\n" + "\n".join(lines) + "\n")
    with pytest.raises(MedixError, match=TAMPERED[case]):
        validate_submission(path)


def test_a_limited_run_is_not_a_complete_submission(tmp_path, policy, stub):
    from medix.eval.submit import build_submission, validate_submission

    _jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", _mcq_rows(2))
    run_eval(_eval_cfg(tmp_path, policy.url, stub.url))
    with pytest.raises(MedixError, match=r"mmlu_anatomy \(2 of 135 items\)"):
        build_submission(tmp_path / "run")
    counts = validate_submission(build_submission(tmp_path / "run", allow_incomplete=True))
    assert "mmlu_anatomy" in counts["incomplete"]


# --- 10: no FutureWarning from the local judge ------------------------------------------------------------------

def test_the_local_judge_raises_no_future_warning():
    from medix.judge import Judge, JudgeRequest

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        with Judge(JudgeConfig(backend="local", cache=False)) as judge:
            verdicts = judge.judge([JudgeRequest(candidate=c, reference="pneumonia") for c in ("pneumonia", "edema")])
            (talk,) = judge.converse([JudgeRequest(candidate="pneumonia", reference="pneumonia", question="q")], 2,
                                     protocol="paper")
    assert all(v.ok for v in verdicts) and talk.ok and len(talk.rounds) == 2
