"""Issue 12 (nothing silent, nothing lost), the parts outside eval/: each test is a row of docs/reliability.md.

Loopback servers, tiny files, no model loads: every test here runs in seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import REPO
from medix.chat_client import ChatClient
from medix.config import JudgeConfig
from medix.errors import MedixError
from medix.judge import Judge, JudgeRequest
from medix.testing.stub_server import JudgeStub, LoopbackServer, free_port

SECRET = "sk-or-v1-0123456789abcdef0123456789abcdef"


def medix(*args, cwd=REPO, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "medix", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


def _requests(n: int) -> list[JudgeRequest]:
    return [JudgeRequest(candidate=f"answer {i}", reference=f"answer {i}") for i in range(n)]


@pytest.fixture
def reply_server():
    """A loopback server whose /v1/chat/completions answers with `state["reply"]()` (a starlette Response)."""
    state = {"reply": None}

    async def completions(request):
        return state["reply"]()

    with LoopbackServer(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])) as server:
        state["url"] = server.url
        yield state


# --- 8: circuit breaker ---------------------------------------------------------------------------------------

def _dead_judge(url: str, **overrides) -> JudgeConfig:
    settings = dict(backend="openai", model="m", base_urls=[url], cache=False, timeout_s=0.5, max_retries=3,
                    backoff_s=0.01, max_concurrency=2, max_consecutive_failures=4)
    return JudgeConfig(**{**settings, **overrides})


def test_hanging_judge_trips_the_breaker_in_seconds():
    # Without the breaker: 40 requests × 4 attempts × 0.5 s / 2 at a time = 40 s.
    with JudgeStub(hang=1.0, hang_s=2.0) as stub:
        start = time.monotonic()
        with Judge(_dead_judge(stub.url)) as judge:
            verdicts = judge.judge(_requests(40))
        elapsed = time.monotonic() - start
        assert elapsed < 6, f"took {elapsed:.1f}s"
        assert stub.counts["requests"] <= 6  # the 4 that tripped it, plus what was in flight
    assert all(v.score is None for v in verdicts)
    assert f"circuit open: {stub.url} did not answer 4 requests in a row" in verdicts[-1].error


def test_refusing_judge_trips_the_breaker():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with Judge(_dead_judge(url, timeout_s=0.2, backoff_s=0.2)) as judge:
        verdicts = judge.judge(_requests(20))
    assert all(v.score is None for v in verdicts)
    assert sum(v.attempts for v in verdicts) < 20 * 4  # later tries failed at once, sending nothing
    assert sum(f"circuit open: {url} did not answer" in v.error for v in verdicts) >= 10


def test_breaker_counts_only_consecutive_failures_and_closes_on_a_reply():
    with JudgeStub() as stub:
        client = ChatClient([f"http://127.0.0.1:{free_port()}/v1", stub.url], timeout_s=1, max_retries=0,
                            max_consecutive_failures=2, circuit_retry_s=0.2)

        async def scenario():  # round-robin: dead, alive, dead, ...: never two failures in a row
            return [await client.chat([{"role": "user", "content": "hi"}], model="m") for _ in range(6)]

        results = asyncio.run(scenario())
    assert not any(r.circuit_open for r in results)
    assert client.circuit_error is None


def test_breaker_probes_again_after_the_cool_down():
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = ChatClient(url, timeout_s=0.01, max_retries=0, max_consecutive_failures=2, circuit_retry_s=0.3)

    async def scenario():
        results = []
        for pause in (0.02, 0, 0, 0.35, 0, 0):  # two failures spanning the 0.01 s timeout, a cool-down
            results.append(await client.chat([{"role": "user", "content": "x"}], model="m"))
            await asyncio.sleep(pause)
        return results

    results = asyncio.run(scenario())
    assert [r.circuit_open for r in results] == [False, False, True, True, False, True]  # 5th: the probe
    assert results[4].attempts == 1
    with pytest.raises(MedixError, match="circuit open"):
        client.check_circuit()


def test_infer_server_has_a_short_default_timeout():
    from medix.infer import Assistant

    assistant = Assistant("MediX-R1-2B", server=f"http://127.0.0.1:{free_port()}/v1")
    assert assistant.backend.client.timeout_s <= 60


# --- 15: garbage replies from a server ------------------------------------------------------------------------

@pytest.mark.parametrize("reply,message", [
    (lambda: Response("{not json", media_type="application/json"), "reply is not valid JSON"),
    (lambda: Response("<html>busy</html>", media_type="text/html"), "reply is not a chat completion"),
    (lambda: JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}),
     "empty 'choices' list"),
])
def test_garbage_reply_is_a_clear_error(reply_server, reply, message):
    reply_server["reply"] = reply
    client = ChatClient(reply_server["url"], timeout_s=5, max_retries=1, backoff_s=0.01)
    result = asyncio.run(client.chat([{"role": "user", "content": "x"}], model="m"))
    assert not result.ok and message in result.error and result.attempts == 2


def test_infer_server_garbage_is_one_line_without_traceback(reply_server):
    reply_server["reply"] = lambda: JSONResponse({"id": "x", "choices": []})
    result = medix("infer", "--model", "MediX-R1-2B", "--server", reply_server["url"], "--question", "Diagnosis?")
    assert result.returncode == 2, result.stderr
    assert "empty 'choices' list" in result.stderr and "Traceback" not in result.stderr


def test_infer_zero_tokens_is_a_clear_error():
    result = medix("infer", "--question", "Diagnosis?", "--max-new-tokens", "0")
    assert result.returncode == 2 and "max_new_tokens must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr


# --- 17: the API key never reaches an error text ----------------------------------------------------------------

def test_echoed_api_key_is_redacted(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDIX_TEST_KEY", SECRET)
    with JudgeStub(echo_auth=1.0) as stub:
        config = JudgeConfig(backend="openai", model="m", base_urls=[stub.url], cache=False,
                             api_key_env="MEDIX_TEST_KEY")
        with Judge(config) as judge:
            (verdict,) = judge.judge(_requests(1))
    assert stub.counts["echo_auth"] == 1  # the server really echoed it (401: not retried)
    assert "invalid API key in header: Bearer [redacted]" in verdict.error
    assert SECRET not in verdict.error and SECRET[:20] not in verdict.error


@pytest.mark.parametrize("text", [
    f"Authorization: Bearer {SECRET}", f"key {SECRET} rejected", "token=Bearer abcdefgh12345678 end",
])
def test_redact_shapes_of_keys(text):
    from medix.chat_client import redact

    out = redact(text, ("my-own-key",))
    assert "[redacted]" in out and SECRET not in out and "abcdefgh12345678" not in out
    assert redact("the configured my-own-key leaked", ("my-own-key",)) == "the configured [redacted] leaked"


# --- 4, 15, 16: `medix reward score` outputs and exit status ----------------------------------------------------

ROWS = [{"id": i, "response": "<answer>x</answer>", "solution": "x"} for i in range(3)]


def _rows_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


class _FailingJudgeComposite:
    """Stands in for CompositeReward (no models): the judge fails on every second row."""

    judge_identity = {"backend": "openai", "model": "m"}

    def __init__(self, config):
        pass

    def score(self, responses, solutions, problems, has_image):
        from medix.rewards.composite import RewardResult

        failed = "circuit open: http://127.0.0.1:9/v1 did not answer"
        return [RewardResult(None if i % 2 == 0 else 1.0,
                             {"accuracy_llm": None if i % 2 == 0 else 1.0, "accuracy_embed": 1.0, "modality": None,
                              "format": 1.0},
                             {"judge_error": failed if i % 2 == 0 else None, "similarity": 1.0}, None, "x")
                for i in range(len(responses))]

    def close(self):
        pass


def test_reward_score_exits_nonzero_on_judge_errors(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import medix.rewards.composite
    from medix.cli import app

    monkeypatch.setattr(medix.rewards.composite, "CompositeReward", _FailingJudgeComposite)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["reward", "score", "-i", str(_rows_file(tmp_path)), "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert len(out.read_text().splitlines()) == 3  # every row written first
    last = result.output.strip().splitlines()[-1]
    assert "2 of 3 rows have judge_error" in last and "circuit open" in result.output


@pytest.mark.parametrize("make_output,overwrite,message", [
    (lambda tmp: tmp / "in.jsonl", False, "is the input file"),
    (lambda tmp: tmp / "in.jsonl", True, "is the input file"),
    (lambda tmp: tmp / "exists.jsonl", False, "already exists; pass --overwrite"),
    (lambda tmp: tmp, False, "is a directory"),
    (lambda tmp: tmp / "a-file.txt" / "out.jsonl", False, "is not a directory"),
])
def test_reward_score_refuses_bad_outputs_before_models_load(tmp_path, make_output, overwrite, message):
    source = _rows_file(tmp_path)
    (tmp_path / "exists.jsonl").write_text("keep me\n")
    (tmp_path / "a-file.txt").write_text("")
    output = make_output(tmp_path)
    result = medix("reward", "score", "-i", str(source), "-o", str(output), *(["--overwrite"] if overwrite else []))
    assert result.returncode == 2 and message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr
    assert source.read_text().count("\n") == 3 and (tmp_path / "exists.jsonl").read_text() == "keep me\n"


def test_read_only_output_folder_is_refused_before_models_load(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import medix.files
    import medix.rewards.composite
    from medix.cli import app

    built = []
    monkeypatch.setattr(medix.rewards.composite, "CompositeReward", lambda cfg: built.append(cfg))
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: let the probe meet what a read-only folder answers

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(medix.files.tempfile, "TemporaryFile", refuse)
    try:
        result = CliRunner().invoke(app, ["reward", "score", "-i", str(_rows_file(tmp_path)),
                                          "-o", str(folder / "out.jsonl")])
    finally:
        folder.chmod(0o755)
    assert isinstance(result.exception, MedixError), result.exception
    assert "ro is not writable (Permission denied)" in str(result.exception) and not built


# --- 10: a managed server never outlives medix, never borrows a foreign port ---------------------------------------

SERVER_SCRIPT = """
import sys, time
from medix.serving.process import ManagedServer

class Reporting(ManagedServer):
    def wait_for(self, process):  # the parent is now waiting for the engine: the guarded start has begun
        print("child", self.process.pid, flush=True)
        return super().wait_for(process)

port, delay = sys.argv[1], sys.argv[2]
command = [sys.executable, "-m", "medix.testing.stub_server", "--port", port, "--start-delay", delay]
with Reporting(command, f"http://127.0.0.1:{port}/v1", startup_timeout_s=300):
    print("ready", flush=True)
    time.sleep(300)
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie: an orphan re-parented to a PID 1 that does not reap stays a zombie forever."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to the signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _lines(stream, into: "queue.Queue[str | None]") -> None:
    for line in stream:
        into.put(line)
    into.put(None)  # the process closed its stdout


def _wait_for_line(lines: "queue.Queue[str | None]", prefix: str, timeout_s: float) -> list[str]:
    """The lines read until one starts with `prefix`; fails (with them) after `timeout_s` or at EOF."""
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"no {prefix!r} line within {timeout_s:.0f} s; got {seen}")


@pytest.mark.parametrize("delay,wait_for,sig", [
    ("120", "child", signal.SIGINT),  # Ctrl-C while the engine is still loading (it would take 120 s)
    ("0.2", "ready", signal.SIGTERM),  # SIGTERM once it serves
])
def test_managed_server_stops_its_child_on_signals(tmp_path, delay, wait_for, sig):
    """Waits on real conditions (the parent reports it is waiting for the child / the child answers), with
    generous bounds for a loaded machine; none of them is a speed claim."""
    script = tmp_path / "serve.py"
    script.write_text(SERVER_SCRIPT)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port), delay], stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    child = None
    try:
        seen = _wait_for_line(lines, "child", 120)
        child = int(seen[-1].split()[1])
        if wait_for != "child":
            _wait_for_line(lines, wait_for, 120)
        assert _alive(child)
        proc.send_signal(sig)
        proc.wait(timeout=60)  # stop() gives the child 20 s to exit on SIGTERM, then kills its group
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the server outlived medix"
    finally:
        proc.kill()
        proc.wait()
        if child and _alive(child):
            os.killpg(child, signal.SIGKILL)


def test_managed_server_refuses_a_busy_port():
    from medix.serving.process import ManagedServer

    with JudgeStub() as foreign:
        command = [sys.executable, "-m", "medix.testing.stub_server", "--port", str(foreign.port)]
        server = ManagedServer(command, foreign.url, startup_timeout_s=30)
        with pytest.raises(MedixError, match=f"port {foreign.port} on 127.0.0.1 is already in use"):
            server.start()
    assert server.process is None  # nothing was started


# --- 12, 13: unreadable text names the file and line --------------------------------------------------------------

GOOD_ROW = b'{"id": "1", "problem": "q", "solution": "a", "response": "a"}\n'


@pytest.mark.parametrize("name,content,message", [
    ("rows.jsonl", GOOD_ROW + b'{"id": "2", "problem": "caf\xe9", "solution": "a"}\n',
     "rows.jsonl, row 2: not UTF-8 text (byte 0xe9 at column 28)"),
    ("rows.json", b'[{"id": "1",\n "problem": "\xff"}]', "rows.json, line 2: not UTF-8 text (byte 0xff"),
    ("rows.json", b'[{"id": "1",\n "problem": }]', "rows.json, line 2: not valid JSON"),
])
def test_data_files_name_file_and_line(tmp_path, name, content, message):
    from medix.data.datasets import load_samples

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MedixError, match=re.escape(message)):
        load_samples(path)


def test_yaml_config_not_utf8(tmp_path):
    from medix.config import load_reward_config

    path = tmp_path / "reward.yaml"
    path.write_bytes(b"weights:\n  judge: 0.5  # \xe9t\xe9\n")
    with pytest.raises(MedixError, match=r"reward.yaml, line 2: not UTF-8 text"):
        load_reward_config(path)


def test_reward_score_non_utf8_input_is_one_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(GOOD_ROW + b'{"response": "\x80", "solution": "a"}\n')
    result = medix("reward", "score", "-i", str(path), "-o", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and "in.jsonl, row 2: not UTF-8 text" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("bad_line", [b"{not json\n", b'{"task": "t"}\n', b'{"id": "\xfe"}\n'])
def test_records_file_with_a_damaged_middle_line(tmp_path, bad_line):
    from medix.eval.schema import JsonlStore

    path = tmp_path / "generations" / "t.jsonl"
    path.parent.mkdir()
    path.write_bytes(b'{"id": "a"}\n' + bad_line + b'{"id": "c"}\n')
    with pytest.raises(MedixError, match=r"t.jsonl, row 2: .*delete that line"):
        JsonlStore(path).read()


# --- 5: `medix train` never mixes two runs in one folder, never trains zero steps ---------------------------------

@pytest.mark.parametrize("override,message", [
    ("trainer.max_steps=0", "trainer.max_steps=0 would train nothing"),
    ("trainer.max_steps=-5", "trainer.max_steps: Input should be greater than or equal to -1"),
])
def test_train_max_steps_must_train_something(override, message):
    from medix.train.config import load_train_config

    with pytest.raises(MedixError, match=message):
        load_train_config(None, ["data.train=x.jsonl", override])
    assert load_train_config(None, ["data.train=x.jsonl", "trainer.max_steps=-1"]).trainer.max_steps == -1


def _previous_run(out: Path) -> None:
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "completions.jsonl").write_text("{}\n")
    (out / "notes.txt").write_text("mine")


def test_train_into_a_previous_run_is_refused(tmp_path):
    _previous_run(tmp_path / "run")
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: {{train: {tmp_path / 'd.jsonl'}}}\ntrainer: {{output_dir: {tmp_path / 'run'}}}\n")
    result = medix("train", "--config", str(cfg), "rollout.num_generations=5")
    assert result.returncode == 2 and "holds a previous run (checkpoint-2, completions.jsonl, metrics.jsonl)" in \
        " ".join(result.stderr.split())
    assert "--resume" in result.stderr and "--overwrite" in result.stderr
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_train_resume_and_overwrite(tmp_path):
    from medix.train.config import TrainerConfig
    from medix.train.run_folder import claim_output_dir

    out = tmp_path / "run"
    _previous_run(out)
    resumed = TrainerConfig(output_dir=str(out))
    claim_output_dir(resumed, resume=True)
    assert resumed.resume_from_checkpoint == str(out / "checkpoint-2") and (out / "metrics.jsonl").exists()
    claim_output_dir(TrainerConfig(output_dir=str(out)), overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only the run's own files went
    with pytest.raises(MedixError, match="nothing to resume"):
        claim_output_dir(TrainerConfig(output_dir=str(out)), resume=True)
    with pytest.raises(MedixError, match="exclude each other"):
        claim_output_dir(TrainerConfig(output_dir=str(out)), resume=True, overwrite=True)
    claim_output_dir(TrainerConfig(output_dir=str(tmp_path / "new" / "run")))  # a fresh folder is fine
