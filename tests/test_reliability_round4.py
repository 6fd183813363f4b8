"""Issue "nothing silent, nothing lost, no secret written, round 4": each test is a row of docs/reliability.md.

Loopback servers, tiny files, in-process CLI calls. New names are imported inside the tests, so this file also
runs against the code before the change (to see every case fail there).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cli_runner import cli
from red_servers import echo_auth_server, headers_then_nothing
from medix.errors import MedixError
from medix.testing.stub_server import JudgeStub, LoopbackServer, free_port

PASSWORD = "hunter2-pw"
# What a hostile reply may hold: clear screen, an OSC-8 link, a carriage return over a fake success line, the
# bell, an 8-bit CSI.
HOSTILE = "\x1b[2J\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07\rOK: all requests succeeded\x07\x9b31m"


def _reply_app(content: str | None = None, raw_json: str | None = None, status: int = 200):
    """A chat server answering every request with `content` (or a raw JSON body, for text json.dumps cannot
    encode as UTF-8, or an error body with `status`)."""
    async def completions(request: Request):
        body = await request.json()
        if raw_json is not None:
            return Response(raw_json.encode("utf-8", "surrogatepass"), status_code=status,
                            media_type="application/json")
        return JSONResponse({"id": "r", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                          "finish_reason": "stop"}]}, status_code=status)

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model"}]})

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"]),
                             Route("/v1/models", models)])


def _no_control(text: str) -> None:
    assert not any(c in text for c in "\x1b\x07\r\x9b"), repr(text[:300])


# --- 5: text from a server cannot drive the terminal -------------------------------------------------------------

def test_infer_prints_a_hostile_reply_with_its_control_characters_written_out():
    reply = f"<OTHER><think>{HOSTILE}</think><answer>{HOSTILE}</answer>"
    with LoopbackServer(_reply_app(reply)) as server:
        code, output, _ = cli("infer", "--question", "q?", "--server", server.url, "--model", "m")
    assert code == 0
    _no_control(output)
    flat = " ".join(output.split())
    assert "\\x1b[2J" in flat and "OK: all requests succeeded" in flat  # shown, harmless


def test_a_hostile_error_body_is_one_harmless_line(tmp_path):
    with LoopbackServer(_reply_app(raw_json=json.dumps({"error": HOSTILE}), status=400)) as server:
        code, output, error = cli("infer", "--question", "q?", "--server", server.url, "--model", "m",
                                  "--timeout", "2")
    from medix.cli.common import console

    with console.capture() as captured:  # the one-line error of `medix` (cli.main) goes through this console
        console.print(f"error: {error}" if error else output)
    _no_control(captured.get())


def test_reward_score_table_and_log_lines_are_terminal_safe(tmp_path):
    import logging

    from medix.cli.common import SafeRichHandler, console

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"response": f"<answer>{HOSTILE}</answer>", "solution": "x"}) + "\n")
    config = tmp_path / "reward.yaml"
    with LoopbackServer(_reply_app("YES")) as judge:
        config.write_text(f"judge: {{backend: openai, model: m, base_urls: ['{judge.url}'], cache: false}}\n")
        code, output, _ = cli("reward", "score", "-i", str(rows), "-o", str(tmp_path / "out.jsonl"),
                              "-c", str(config), "--show", "5")
    assert code == 0
    _no_control(output)
    record = logging.LogRecord("medix", logging.WARNING, __file__, 1, f"server said {HOSTILE}", None, None)
    with console.capture() as captured:
        SafeRichHandler(console=console, show_path=False).emit(record)
    _no_control(captured.get())


# --- 7: a reply no writer can encode does not stop a phase --------------------------------------------------------

def test_a_lone_surrogate_in_a_reply_is_replaced_and_the_item_recorded(tmp_path):
    from medix.eval.config import EvalConfig
    from medix.eval.runner import run_eval

    data = tmp_path / "data" / "mmlu_anatomy" / "test.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text(json.dumps({"question": "q?", "choices": ["x", "y"], "answer": 0}) + "\n")
    body = ('{"id": "r", "object": "chat.completion", "created": 0, "model": "m", "choices": [{"index": 0, '
            '"message": {"role": "assistant", "content": "<answer>A \\ud800</answer>"}, "finish_reason": "stop"}]}')
    with LoopbackServer(_reply_app(raw_json=body)) as policy, JudgeStub() as judge:
        from medix.config import JudgeConfig

        cfg = EvalConfig(model="m", backend="openai", base_url=policy.url, data_dir=str(tmp_path / "data"),
                         output_dir=str(tmp_path / "run"), tasks=["mmlu_anatomy"], bootstrap=0, max_retries=1,
                         judge=JudgeConfig(backend="openai", model="stub", base_urls=[judge.url], cache=False))
        result = run_eval(cfg)
    [record] = [json.loads(line) for line in (tmp_path / "run" / "generations" / "mmlu_anatomy.jsonl").open()]
    assert record["raw"] == "<answer>A \ufffd</answer>" and record["error"] is None
    assert result.scores is not None


# --- 2 and 6: a submission never replaces another, and holds only what it wrote ----------------------------------

def _scored_run(tmp_path: Path, name: str) -> Path:
    from medix.config import JudgeConfig
    from medix.eval.config import EvalConfig
    from medix.eval.runner import run_eval

    data = tmp_path / "data" / "mmlu_anatomy" / "test.jsonl"
    if not data.is_file():
        data.parent.mkdir(parents=True)
        data.write_text(json.dumps({"question": "q?", "choices": ["x", "y"], "answer": 0}) + "\n")
    with JudgeStub(role="policy", policy_answer="A") as policy, JudgeStub() as judge:
        run_eval(EvalConfig(model="org/same-model", backend="openai", base_url=policy.url, tasks=["mmlu_anatomy"],
                            data_dir=str(tmp_path / "data"), output_dir=str(tmp_path / name), bootstrap=0,
                            judge=JudgeConfig(backend="openai", model="stub", base_urls=[judge.url], cache=False)))
    return tmp_path / name


def test_a_second_submission_of_the_same_model_is_refused_and_stray_files_stay_out(tmp_path):
    from medix.eval.submit import build_submission

    run_a, run_b = _scored_run(tmp_path, "a"), _scored_run(tmp_path, "b")
    subs = tmp_path / "subs"
    first = build_submission(run_a, subs, allow_incomplete=True)
    kept = first.read_bytes()
    (subs / "results" / "same_model" / "notes.txt").write_text("my own notes")
    with pytest.raises(MedixError, match="already there.*--overwrite"):
        build_submission(run_b, subs, allow_incomplete=True)
    assert first.read_bytes() == kept
    again = build_submission(run_b, subs, allow_incomplete=True, overwrite=True)
    with zipfile.ZipFile(again) as zf:
        assert sorted(zf.namelist()) == ["same_model/same_model.jsonl", "same_model/same_model_eval.jsonl",
                                         "same_model/same_model_score.txt"]


# --- 1: URLs: refused without a scheme, named without credentials or query --------------------------------------

@pytest.mark.parametrize("given", [f"medix:{PASSWORD}@127.0.0.1:8000/v1", "127.0.0.1:8000/v1",
                                   "http://127.0.0.1:99999/v1", "ftp://127.0.0.1/v1"])
def test_a_server_url_that_is_not_http_with_a_host_is_refused_without_its_password(given, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"reference": "a", "candidate": "a", "label": True}) + "\n")
    code, output, error = cli("judge", "audit", "--pairs", str(pairs), "--judge-backend", "openai",
                              "--judge-model", "m", "--judge-url", given)
    said = str(error) if error else output
    assert code != 0 and "URL" in said and PASSWORD not in said and PASSWORD not in output


def test_infer_and_rollout_server_urls_are_checked_the_same_way():
    from medix.train.config import load_train_config

    code, output, error = cli("infer", "--question", "q?", "--server", f"medix:{PASSWORD}@127.0.0.1:8000/v1")
    assert code != 0 and error is not None and "--server:" in str(error) and PASSWORD not in str(error)
    with pytest.raises(MedixError, match="rollout.vllm_server_base_url: .*not an http"):
        load_train_config(None, ["data.train=x.jsonl", "rollout.vllm_server_base_url=localhost:8000"])


def test_a_key_in_a_url_query_reaches_no_identity_or_message():
    from medix.config import JudgeConfig
    from medix.judge.core import one_turn_identity

    url = f"http://127.0.0.1:{free_port()}/v1?api_key={PASSWORD}"
    identity = json.dumps(one_turn_identity(JudgeConfig(backend="openai", model="m", base_urls=[url])))
    assert PASSWORD not in identity and "127.0.0.1" in identity


# --- 1: credentials echoed back or logged ------------------------------------------------------------------------

def test_a_basic_auth_header_echoed_back_reaches_no_record(tmp_path):
    import base64

    from medix.config import JudgeConfig
    from medix.eval.config import EvalConfig
    from medix.eval.runner import run_eval

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


def test_the_no_logprobs_warning_names_the_server_without_credentials(caplog):
    from medix.config import JudgeConfig
    from medix.judge import Judge, JudgeRequest

    with LoopbackServer(_reply_app("YES")) as server:  # a reply without logprobs
        url = server.url.replace("http://", f"http://medix:{PASSWORD}@")
        with Judge(JudgeConfig(backend="openai", model="m", base_urls=[url], cache=False, logprobs=True)) as judge:
            judge.judge([JudgeRequest(candidate="a", reference="a")])
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "returned no logprobs" in said and PASSWORD not in said


# --- 3 and 4: one home for every config key; the plan is the run -------------------------------------------------

@pytest.mark.parametrize("given,message", [
    ("rollout.learning_rate=0.5", "rollout.learning_rate: learning_rate is medix's trainer.learning_rate"),
    ("rollout.max_steps=0", "rollout.max_steps: max_steps is medix's trainer.max_steps"),
    ("algorithm.learning_rate=-1e-5", "algorithm.learning_rate: learning_rate is medix's trainer.learning_rate"),
    ("algorithm.output_dir=/elsewhere/earlier-run", "algorithm.output_dir: output_dir is medix's trainer.output_dir"),
    ("rollout.use_vllm=false", "rollout.use_vllm is set by rollout.backend"),
    ("trainer.warmup_steps=abc", "trainer.warmup_steps='abc': TRL's warmup_steps takes float"),
])
def test_a_key_outside_its_home_or_of_the_wrong_type_is_refused(given, message):
    from medix.train.config import load_train_config

    with pytest.raises(MedixError, match=re.escape(message)):
        load_train_config(None, ["data.train=x.jsonl", given])


def test_a_pass_through_number_is_typed_as_trl_types_it():
    from medix.train.config import load_train_config

    cfg = load_train_config(None, ["data.train=x.jsonl", "trainer.adam_epsilon=1e-8"])  # YAML 1.1: a string
    assert cfg.trainer.model_extra["adam_epsilon"] == 1e-8
    with pytest.raises(MedixError, match="warmup_steps is given twice, as algorithm.warmup_steps and "
                                         "trainer.warmup_steps"):
        load_train_config(None, ["data.train=x.jsonl", "algorithm.warmup_steps=3", "trainer.warmup_steps=4"])


@pytest.mark.parametrize("text,line", [
    ("data: {train: x.jsonl}\ntrainer:\n  max_steps: 3\ntrainer:\n  learning_rate: 0.5\n", "line 4"),
    ("data: {train: x.jsonl}\ntrainer:\n  max_steps: 3\n  max_steps: 5\n", "line 4"),
])
def test_a_key_given_twice_in_a_yaml_file_is_refused_naming_both_lines(tmp_path, text, line):
    from medix.train.config import load_train_config

    config = tmp_path / "train.yaml"
    config.write_text(text)
    with pytest.raises(MedixError, match=f"{line}: .*given twice \\(lines (2|3) and 4\\)"):
        load_train_config(config, [])


def test_plan_flags_and_accelerate_numbers_that_are_not_numbers_are_named(tmp_path):
    accelerate = tmp_path / "acc.yaml"
    accelerate.write_text("distributed_type: MULTI_GPU\nnum_processes: eight\n")
    config = tmp_path / "train.yaml"
    config.write_text("data: {train: x.jsonl}\n")
    code, output, error = cli("train", "--config", str(config), "--plan", "--gpu-memory", "nan")
    assert code != 0 and error is not None and "--gpu-memory (nan GiB) a number > 0" in str(error)
    code, output, error = cli("train", "--config", str(config), "--plan", "--accelerate-config", str(accelerate))
    assert code != 0 and error is not None and "num_processes is 'eight'" in str(error)


# --- 6: `submit --check` reads every member and accepts exactly the official layout --------------------------------

def _rebuilt(zip_path: Path, tmp_path: Path, change) -> Path:
    """A copy of `zip_path` (same name, another folder) whose members `change(members)` rewrites:
    members is a list of (ZipInfo, bytes)."""
    with zipfile.ZipFile(zip_path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    target = tmp_path / "tampered" / zip_path.name
    target.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(target, "w") as zf, _quiet():
        for info, data in change(members):
            zf.writestr(info, data)
    return target


def _quiet():
    import contextlib
    import warnings

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")  # zipfile warns on a duplicate name, which is the point of one case
    return stack


def _member(name: str, data: bytes, mode: int | None = None) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o100644 if mode is None else mode) << 16
    return info, data


def _twice(text: bytes, task: bytes) -> bytes:
    """The score file with the task's line repeated (a later copy that claims another score)."""
    line = next(x for x in text.splitlines(True) if x.startswith(task))
    return text.replace(line, line + line.replace(b"0.0000", b"1.0000").replace(b"1.0000", b"0.0000", 0))


def _u(members) -> str:
    return members[0][0].filename.split("/")[0]


MEMBER_CASES = {
    "a path outside the folder": (lambda m: m + [_member(f"{_u(m)}/../../evil.sh", b"rm -rf ~")], "unexpected member"),
    "a file at the root": (lambda m: m + [_member("readme.txt", b"hi")], "unexpected member 'readme.txt'"),
    "a symlink to /etc/passwd": (lambda m: [(i, d) for i, d in m if not i.filename.endswith("_score.txt")] + [
        _member(next(i.filename for i, _ in m if i.filename.endswith("_score.txt")), b"/etc/passwd", 0o120777)],
        "not a regular file"),
    "a tampered first copy of a member": (lambda m: [_member(m[0][0].filename, m[0][1].replace(b'"score": 1', b'"score": 0')
                                                              .replace(b'"score": 0', b'"score": 1'))] + m,
                                          "appears twice"),
    "a score file with two lines for one task": (lambda m: [(i, _twice(d, b"mmlu_anatomy")
                                                             if i.filename.endswith("_score.txt") else d)
                                                            for i, d in m], "two lines for mmlu_anatomy"),
    "a member that is not UTF-8": (lambda m: [(i, d + b"\xff\xfe" if i.filename.endswith("_eval.jsonl") else d)
                                              for i, d in m], "not UTF-8"),
}


@pytest.mark.parametrize("case", list(MEMBER_CASES))
def test_submission_check_reads_every_member_and_refuses_anything_else(tmp_path, case):
    from medix.eval.submit import build_submission, validate_submission

    good = build_submission(_scored_run(tmp_path, "run"), allow_incomplete=True)
    validate_submission(good)
    change, message = MEMBER_CASES[case]
    code, output, error = cli("eval", "submit", "--check", str(_rebuilt(good, tmp_path, change)))
    assert code != 0 and error is not None and message in str(error), output


def test_a_corrupt_member_is_named_not_a_traceback(tmp_path):
    from medix.eval.submit import build_submission

    good = build_submission(_scored_run(tmp_path, "run"), allow_incomplete=True)
    target = _rebuilt(good, tmp_path, lambda m: m)  # stored, uncompressed: a byte of data is easy to flip
    with zipfile.ZipFile(target) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("_eval.jsonl"))
    raw = bytearray(target.read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF
    target.write_bytes(bytes(raw))
    code, output, error = cli("eval", "submit", "--check", str(target))
    assert code != 0 and error is not None and "cannot be read" in str(error)


def test_an_encrypted_member_is_named(tmp_path):
    """The encryption bit set in the member's central-directory entry (zipfile cannot write encrypted members)."""
    import struct

    from medix.eval.submit import build_submission

    good = build_submission(_scored_run(tmp_path, "run"), allow_incomplete=True)
    target = _rebuilt(good, tmp_path, lambda m: m)
    raw = bytearray(target.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at != -1:  # every central-directory entry: flag bits at +8, name length at +28, name at +46
        length = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46:at + 46 + length].endswith(b"_eval.jsonl"):
            raw[at + 8] |= 0x1
        at = raw.find(b"PK\x01\x02", at + 46)
    target.write_bytes(bytes(raw))
    code, output, error = cli("eval", "submit", "--check", str(target))
    assert code != 0 and error is not None and "is encrypted" in str(error)


# --- 7: the official files given to --official-tasks -------------------------------------------------------------

TASKS_YAML = "llm:\n  pubmedqa:\n    path: some/sets\n    name: pubmedqa\n    split: test\n    choices:\n      - yes\n      - no\n"
UTILS_PY = ('def load(sample, dataset_name):\n    if dataset_name == "mimic_cxr_report_summarization":\n'
            '        question = f"""Summarize.\\n{sample.get("report")}"""\n')
LAUGHS = ("llm:\n  pubmedqa:\n    path: some/sets\n    a: &a [x, x, x, x, x, x, x, x, x]\n    b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
          "    c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n    choices: [*c, *c, *c, *c, *c, *c, *c, *c]\n")

OFFICIAL_CASES = {
    # name: (tasks.yaml bytes, utils.py bytes, message)
    "tasks.yaml not UTF-8": (TASKS_YAML.encode().replace(b"test", b"t\xe9st"), UTILS_PY.encode(), "line 5"),
    "utils.py not UTF-8": (TASKS_YAML.encode(), UTILS_PY.encode().replace(b"Summarize", b"Summ\xe9rize"), "utils.py"),
    "utils.py with a syntax error": (TASKS_YAML.encode(), UTILS_PY.encode().replace(b"if dataset_name", b"if if"),
                                     "line 2: not valid Python"),
    "path: [1, 2]": (TASKS_YAML.replace("path: some/sets", "path: [1, 2]").encode(), UTILS_PY.encode(),
                     "task pubmedqa: path is list"),
    "nested aliases as choices": (LAUGHS.encode(), UTILS_PY.encode(), "choice 1 is not one option's text"),
    "a field name with attribute access": (TASKS_YAML.encode(), UTILS_PY.replace('"report"', '"report.__class__"')
                                           .encode(), "column 'report.__class__' is not a plain name"),
    "a field name with a width spec": (TASKS_YAML.encode(), UTILS_PY.replace('"report"', '"report:>99999999"')
                                       .encode(), "column 'report:>99999999' is not a plain name"),
}


@pytest.mark.parametrize("case", list(OFFICIAL_CASES))
def test_a_broken_official_file_is_named_with_line_and_cause(tmp_path, case):
    tasks, utils, message = OFFICIAL_CASES[case]
    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / "tasks.yaml").write_bytes(tasks)
    (folder / "utils.py").write_bytes(utils)
    code, output, error = cli("eval", "run", "--model", "m", "--backend", "openai", "--tasks",
                              "pubmedqa,mimic_cxr_report_summarization", "--official-tasks", str(folder),
                              "--output-dir", str(tmp_path / "run"))
    assert code != 0 and error is not None and message in " ".join(str(error).split()), str(error)


# --- 8: flags that would be ignored, empty data, partial comparisons, one-class calibration, small audits ---------

def test_a_server_flag_with_an_in_process_backend_is_refused(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"reference": "a", "candidate": "a", "label": True}) + "\n")
    for args in (["eval", "run", "--model", "m", "--backend", "local", "--base-url", "http://127.0.0.1:8000/v1",
                  "--tasks", "mmlu_anatomy", "--output-dir", str(tmp_path / "run")],
                 ["eval", "run", "--model", "m", "--backend", "openai", "--judge-backend", "local",
                  "--judge-url", "http://127.0.0.1:8000/v1", "--tasks", "mmlu_anatomy", "--output-dir",
                  str(tmp_path / "run")],
                 ["judge", "audit", "--pairs", str(pairs), "--judge-backend", "local", "--judge-url",
                  "http://127.0.0.1:8000/v1"]):
        code, output, error = cli(*args)
        assert code != 0 and error is not None and "runs the model in this process" in str(error), args


def test_an_empty_task_file_is_named_as_empty(tmp_path):
    from medix.eval.items import TaskUnavailable, load_task
    from medix.eval.registry import registry

    (tmp_path / "mmlu_anatomy").mkdir()
    (tmp_path / "mmlu_anatomy" / "test.jsonl").write_text("")
    with pytest.raises(TaskUnavailable, match="test.jsonl has no rows"):
        load_task(registry()["mmlu_anatomy"], tmp_path)


def test_compare_says_what_it_leaves_out(tmp_path):
    from medix.eval.compare import compare_runs

    data = tmp_path / "data" / "mmlu_anatomy" / "test.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("".join(json.dumps({"question": f"q{i}?", "choices": ["x", "y"], "answer": 0}) + "\n"
                            for i in range(3)))
    from medix.config import JudgeConfig
    from medix.eval.config import EvalConfig
    from medix.eval.runner import run_eval

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


def test_calibrating_on_one_label_class_is_refused_before_the_judge(tmp_path, monkeypatch):
    import medix.cli.judge
    import medix.judge

    monkeypatch.setattr(medix.judge, "Judge", lambda *a, **k: pytest.fail("the judge was built"))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"reference": "a", "candidate": c, "label": True}) + "\n" for c in "ab"))
    code, output, error = cli("judge", "audit", "--pairs", str(pairs), "--calibrate", str(tmp_path / "j.yaml"))
    assert code != 0 and error is not None and "one label only" in str(error)
    assert not (tmp_path / "j.yaml").exists()


def test_a_small_audit_never_replaces_the_shipped_one(tmp_path, monkeypatch):
    from medix.config import JudgeConfig
    from medix.judge.audit import cached_audit, save_audit
    from medix.judge.core import one_turn_identity

    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path))
    config = JudgeConfig(backend="local", model="smollm2-135m")
    shipped = cached_audit(config)
    assert shipped is not None and shipped["pairs"] >= 100  # measured for the embedded judge, shipped with medix
    kept = save_audit({"judge": one_turn_identity(config), "pairs": 4, "accuracy": 1.0, "tpr": 1.0, "fpr": 0.0,
                       "auc": 1.0})
    assert kept is not None and kept["pairs"] == shipped["pairs"]
    assert cached_audit(config)["pairs"] == shipped["pairs"]



def test_a_stalled_policy_server_is_said_while_the_phase_waits(tmp_path, caplog):
    """Headers, then nothing: the phase says which server holds its requests and which settings bound the wait."""
    from medix.config import JudgeConfig
    from medix.eval.config import EvalConfig
    from medix.eval.runner import run_eval

    data = tmp_path / "data" / "mmlu_anatomy" / "test.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text(json.dumps({"question": "q?", "choices": ["x", "y"], "answer": 0}) + "\n")
    with headers_then_nothing(5) as server:
        url = server.url.replace("http://", f"http://medix:{PASSWORD}@")
        run_eval(EvalConfig(model="m", backend="openai", base_url=url, data_dir=str(tmp_path / "data"),
                            output_dir=str(tmp_path / "run"), tasks=["mmlu_anatomy"], timeout_s=1.2,
                            item_timeout_s=2.5, max_retries=3, phases=["generate"],
                            judge=JudgeConfig(backend="openai", model="stub", base_urls=[url], cache=False)))
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "no reply from the policy server(s) http://127.0.0.1:" in said and "item_timeout_s=2 s" in said
    assert PASSWORD not in said


def test_non_finite_numbers_are_refused_in_medix_and_trl_fields():
    from medix.train.config import load_train_config

    for given in ("trainer.learning_rate=.nan", "trainer.adam_epsilon=.inf"):
        with pytest.raises(MedixError, match="finite number"):
            load_train_config(None, ["data.train=x.jsonl", given])
