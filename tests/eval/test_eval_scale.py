"""Evaluation over several servers and against servers as they really are (issue 19), on loopback stubs.

Each test runs in seconds: several policy / judge servers balanced by load, a dead one among them, a
server that rejects the model name, one that drops logprobs, one slower than the client's timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time

import pytest

from helpers import PASSWORD, REPO
from helpers.eval_data import write_task
from helpers.servers import headers_then_nothing
from medix.chat_client import AdaptiveLimit, ChatClient
from medix.judge.config import JudgeConfig
from medix.eval.config import EvalConfig
from medix.eval.runner import run_eval
from medix.judge import Judge, JudgeRequest, identity_key
from medix.testing.stub_server import JudgeStub, free_port


def _mirror(root, n):
    write_task(root, "mmlu_anatomy", [{"question": f"q{i}?", "choices": ["x", "y"], "answer": i % 2} for i in range(n)])


def _cfg(tmp_path, policy_urls, judge_urls, out="run", **extra):
    judge = JudgeConfig(backend="openai", model="stub-judge", base_urls=judge_urls, timeout_s=2, backoff_s=0.01,
                        max_retries=2, max_consecutive_failures=20)
    settings = {"tasks": ["mmlu_anatomy"], "max_new_tokens": 16, "bootstrap": 0, "max_retries": 2,
                "protocol": "medix", "judge_rounds": 1, **extra}
    return EvalConfig(model="stub-policy", backend="openai", base_urls=policy_urls, data_dir=str(tmp_path / "data"),
                      output_dir=str(tmp_path / out), judge=judge, timeout_s=2, **settings)


def _records(path):
    return sorted((json.loads(line) for line in path.open()), key=lambda r: int(r["id"]))


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


# --- the server's own words -------------------------------------------------------------------------------------

def test_http_error_names_server_model_status_and_reason():
    with JudgeStub(role="policy", served_model="/models/SmolLM2") as server:
        client = ChatClient(server.url, max_retries=0)
        result = asyncio.run(client.chat([{"role": "user", "content": "hi"}], model="smollm2-135m"))
        # what `transformers serve` says, which openai 3.x keeps in err.body, not in str(err)
        assert result.error == (f"server {server.url}, model 'smollm2-135m': BadRequestError: HTTP 400: Server is "
                                "pinned to '/models/SmolLM2'; requested 'smollm2-135m'.")
        cli = subprocess.run([sys.executable, "-m", "medix", "infer", "--server", server.url, "--question", "q?"],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert "HTTP 400: Server is pinned to '/models/SmolLM2'; requested 'smollm2-135m'" in " ".join(cli.stderr.split())


# --- several servers --------------------------------------------------------------------------------------------

def test_generation_goes_by_load_over_servers_and_survives_a_dead_one(tmp_path, caplog):
    _mirror(tmp_path / "data", 40)
    dead = _dead_url()
    with JudgeStub(role="policy", latency_s=0.01) as fast, JudgeStub(role="policy", latency_s=0.25) as slow:
        single = run_eval(_cfg(tmp_path, [fast.url], [dead], out="one", phases=["generate"]))
        fast.counts["requests"] = 0
        with caplog.at_level(logging.WARNING):
            run_eval(_cfg(tmp_path, [fast.url, slow.url, dead], [dead], out="three", phases=["generate"],
                          max_concurrency=2, max_retries=1))  # one retry: it must go to a live server
        # fewest in flight: the fast server takes most items (round-robin would give each a third)
        assert fast.counts["requests"] >= 3 * slow.counts["requests"] > 0
        assert fast.counts["requests"] + slow.counts["requests"] == 40  # the dead server's items finished elsewhere
        asked = fast.counts["requests"] + slow.counts["requests"]
        run_eval(_cfg(tmp_path, [fast.url, slow.url, dead], [dead], out="three", phases=["generate"]))
        assert fast.counts["requests"] + slow.counts["requests"] == asked  # resume: nothing asked again
    assert not single.failures
    assert sum(dead in r.getMessage() and "other servers" in r.getMessage() for r in caplog.records) == 1
    one, three = (_records(tmp_path / out / "generations" / "mmlu_anatomy.jsonl") for out in ("one", "three"))
    drop = lambda r: {k: v for k, v in r.items() if k != "attempts"}  # noqa: E731 (retries differ, nothing else)
    assert [drop(r) for r in three] == [drop(r) for r in one] and all(r["error"] is None for r in three)


def test_judge_phase_over_several_judges_with_a_dead_one(tmp_path):
    _mirror(tmp_path / "data", 12)
    with JudgeStub(role="policy") as policy, JudgeStub() as judge_a, JudgeStub() as judge_b:
        result = run_eval(_cfg(tmp_path, [policy.url], [judge_a.url, _dead_url(), judge_b.url]))
        assert judge_a.counts["requests"] > 1 and judge_b.counts["requests"] > 1
    entry = result.scores["tasks"]["mmlu_anatomy"]
    assert not result.failures and entry["judge_failures"] == 0 and entry["n"] == 12


def test_a_server_left_out_is_probed_and_taken_back():
    with JudgeStub(role="policy") as alive:
        dead_port = free_port()
        client = ChatClient([alive.url, f"http://127.0.0.1:{dead_port}/v1"], max_retries=2, backoff_s=0.01,
                            circuit_retry_s=0.3)

        async def scenario():
            for _ in range(8):
                assert (await client.chat([{"role": "user", "content": "q"}], model="m")).ok
            return client._down.copy()

        down = asyncio.run(scenario())
    assert list(down) == [1] and list(client.server_errors) == [f"http://127.0.0.1:{dead_port}/v1"]


def test_a_retry_goes_to_another_server_than_the_one_that_failed():
    # the dead server always has the fewest in flight; the retry must still go to the busy live one
    with JudgeStub(role="policy", latency_s=0.5) as busy:
        client = ChatClient([busy.url, _dead_url()], max_retries=1, backoff_s=0.01)

        async def scenario():
            first = asyncio.ensure_future(client.chat([{"role": "user", "content": "1"}], model="m", client_index=0))
            while not busy.counts["requests"]:  # the first request is in flight at the busy server
                await asyncio.sleep(0.01)
            second = await client.chat([{"role": "user", "content": "2"}], model="m")
            return await first, second

        first, second = asyncio.run(scenario())
    assert first.ok and second.ok and second.attempts == 2 and second.server == 0


# --- a server without logprobs --------------------------------------------------------------------------------

def test_judge_without_logprobs_says_so_once_in_the_output_and_the_identity(tmp_path, caplog):
    _mirror(tmp_path / "data", 6)
    with JudgeStub(role="policy") as policy, JudgeStub(logprobs=False) as judge, JudgeStub() as full:
        with caplog.at_level(logging.WARNING):
            run_eval(_cfg(tmp_path, [policy.url], [judge.url], judge_rounds=3))
        assert all(body.get("logprobs") is True for body in judge.settings.bodies)  # conversations ask too
        run_eval(_cfg(tmp_path, [policy.url], [full.url], out="full", judge_rounds=3))
    notes = [r.getMessage() for r in caplog.records if "no logprobs" in r.getMessage()]
    assert len(notes) == 1 and judge.url in notes[0] and "p_yes: unavailable" in notes[0]
    (folder,) = (tmp_path / "run" / "judgments").iterdir()
    records = _records(folder / "mmlu_anatomy.jsonl")
    assert len(records) == 6 and all(r["judge"]["p_yes"] == "unavailable" for r in records)
    assert json.loads((tmp_path / "run" / "scores.json").read_text())["judge"]["p_yes"] == "unavailable"
    assert json.loads((tmp_path / "run" / "run.json").read_text())["judges"][folder.name]["p_yes"] == "unavailable"
    (full_folder,) = (tmp_path / "full" / "judgments").iterdir()
    assert "p_yes" not in _records(full_folder / "mmlu_anatomy.jsonl")[0]["judge"]
    # A note about the server, not a new judge: the folder is the one the same judge has before any probe.
    from medix.eval.judging import EvalJudge

    cfg = _cfg(tmp_path, [policy.url], [judge.url], judge_rounds=3)
    with Judge(cfg.judge) as same:
        assert folder.name == EvalJudge(same, cfg.judge_rounds, cfg.protocol).key


def test_one_turn_judge_without_logprobs_notes_it_once(tmp_path, caplog):
    requests = [JudgeRequest(f"a{i}", f"a{i}") for i in range(5)]
    with JudgeStub(logprobs=False) as server:
        config = JudgeConfig(backend="openai", model="stub", base_urls=[server.url],
                             cache_path=str(tmp_path / "cache.sqlite"))
        with Judge(config) as judge, caplog.at_level(logging.WARNING):
            before = judge.identity
            verdicts = judge.judge(requests)
            after = judge.identity
            again = judge.judge(requests)  # the note changes no cache key: all five come from the cache
        assert server.counts["requests"] == 5
    assert all(v.score == 1.0 and v.p_yes is None for v in verdicts) and all(v.cached for v in again)
    assert "p_yes" not in before and after["p_yes"] == "unavailable" and identity_key(after) == identity_key(before)
    assert sum("no logprobs" in r.getMessage() for r in caplog.records) == 1


# --- a server slower than the client's timeout ---------------------------------------------------------------------

def test_adaptive_limit_halves_on_timeouts_and_wins_back():
    limit = AdaptiveLimit(8, cooldown_s=0.0)
    assert limit.timed_out() and limit.limit == 4
    limit.timed_out(), limit.timed_out(), limit.timed_out()
    assert limit.limit == 1 and not limit.timed_out()  # never below one
    for _ in range(1 + 2 + 3):  # +1 after `limit` answered requests
        limit.answered()
    assert limit.limit == 4
    slow = AdaptiveLimit(8, cooldown_s=60)
    assert slow.timed_out() and not slow.timed_out() and slow.limit == 4  # one burst of timeouts counts once
    measured = AdaptiveLimit(16, cooldown_s=0.0)
    assert measured.timed_out(answered=3) and measured.limit == 3  # what the server managed, when below half
    assert measured.timed_out(answered=0) and measured.limit == 1  # nothing came back: one at a time


def test_timeouts_lower_the_concurrency_so_a_slow_server_finishes(caplog):
    # One request at a time, 0.1 s each; a client sending 16 at once with a 0.5 s timeout times most of them
    # out, and the server still works through the abandoned ones. Backing off lets every request through.
    with JudgeStub(role="policy", latency_s=0.1, max_inflight=1) as server:
        client = ChatClient(server.url, timeout_s=0.5, max_retries=6, backoff_s=0.05, max_backoff_s=0.3,
                            max_concurrency=16, max_consecutive_failures=8)  # the breaker is on, as by default

        async def run():
            results = await asyncio.gather(*(client.chat([{"role": "user", "content": f"q{i}"}], model="m")
                                             for i in range(16)))
            return results, client.slots.limit

        with caplog.at_level(logging.WARNING):
            results, limit = asyncio.run(run())
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert limit < 16 and any("requests in flight from now on" in r.getMessage() for r in caplog.records)


def test_a_stopped_phase_cancels_its_requests(tmp_path):
    # Judges: a dead server and a hanging one. The breaker opens when the first conversation sent to the
    # hanging judge times out (2 s); the retries sent there 0.5-1 s later (after the dead one refused them)
    # are cancelled at that moment, so the server sees them dropped well before their own 2 s timeout.
    _mirror(tmp_path / "data", 6)
    with JudgeStub(role="policy") as policy, JudgeStub(hang=1.0, hang_s=30) as hanging:
        cfg = _cfg(tmp_path, [policy.url], [hanging.url, _dead_url()])  # the one-token probe goes to the dead one
        cfg.judge = cfg.judge.model_copy(update={"max_consecutive_failures": 2, "backoff_s": 1.0, "max_retries": 3})
        with pytest.raises(Exception, match="circuit open"):
            run_eval(cfg)
        time.sleep(0.3)  # the stub polls for hang-ups every 0.05 s
        dropped = sorted(hanging.settings.dropped)
    assert dropped and dropped[0] < 1.6, dropped  # cancelled, not timed out


# --- failure counts ---------------------------------------------------------------------------------------------

def test_scores_count_judge_and_generation_failures(tmp_path):
    _mirror(tmp_path / "data", 5)
    with JudgeStub(role="policy") as policy, JudgeStub(fail_500=1.0) as broken:
        run_eval(_cfg(tmp_path, [policy.url], [broken.url], protocol="paper", phases=["generate", "judge"]))
        result = run_eval(_cfg(tmp_path, [policy.url], [broken.url], protocol="paper", phases=["score"]))
    scores = result.scores
    assert scores["failures"] == {"judge": 5, "generation": 0, "not_judged": 0}
    text = (tmp_path / "run" / "scores.md").read_text()
    assert "5 judge failure(s) and 0 generation failure(s), counted as 0 (in the denominator)" in text


# --- the scaling benchmark runs ---------------------------------------------------------------------------------

def test_eval_throughput_bench_smoke():
    result = subprocess.run([sys.executable, "bench/eval_throughput.py", "--smoke", "--markdown"], cwd=REPO,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("|")[1:3] for line in result.stdout.splitlines() if line[2:3].isdigit()]
    assert [(c.strip(), p.strip()) for c, p in rows] == [("1", "generate"), ("1", "judge"), ("2", "generate"),
                                                          ("2", "judge")]


def test_a_stalled_policy_server_is_said_while_the_phase_waits(tmp_path, caplog):
    """Headers, then nothing: the phase says which server holds its requests and which settings bound the wait."""

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
