"""The one OpenAI-compatible client (medix/chat_client.py) against loopback servers: the circuit breaker (its
consecutive-failure count, its time-span rule, the probe after a cool-down), garbage replies, an echoed key
redacted, a stalled reply bounded per item, a redirect to another origin refused (docs/reliability.md)."""

import asyncio
import json
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helpers import SECRET
from helpers.eval_data import mcq_rows, stub_eval, stub_judge, write_jsonl
from helpers.servers import headers_then_nothing, reply_server
from medix.chat_client import ChatClient
from medix.judge.config import JudgeConfig
from medix.errors import MedixError
from medix.eval.runner import run_eval
from medix.judge import Judge, JudgeRequest
from medix.testing.stub_server import JudgeStub, LoopbackServer, free_port


def _requests(n: int) -> list[JudgeRequest]:
    return [JudgeRequest(candidate=f"answer {i}", reference=f"answer {i}") for i in range(n)]


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


TIMEOUT_S = 1.5


BURST = 4  # = max_consecutive_failures: one burst reaches the count


def _busy_then_answering():
    """The first BURST requests are held past the client's timeout; every later one is answered."""
    seen = {"n": 0}

    async def reply(body):
        seen["n"] += 1
        if seen["n"] <= BURST:
            await asyncio.sleep(2 * TIMEOUT_S)  # the client has given up by then
        return "YES"

    return reply


def test_a_burst_of_timeouts_then_replies_keeps_the_circuit_closed():
    with reply_server(_busy_then_answering()) as server:
        client = ChatClient(server.url, timeout_s=TIMEOUT_S, max_retries=1, backoff_s=0.01,
                            max_consecutive_failures=BURST, circuit_retry_s=60)

        async def burst():  # BURST requests at once: their first tries time out together
            return await asyncio.gather(*(client.chat([{"role": "user", "content": f"q{i}"}], model="m")
                                          for i in range(BURST)))

        results = asyncio.run(burst())
    assert [r.circuit_open for r in results] == [False] * BURST
    assert [(r.text, r.attempts) for r in results] == [("YES", 2)] * BURST  # each retry was answered
    assert client.circuit_error is None


def test_the_same_count_of_timeouts_over_more_than_a_timeout_opens_it():
    async def never(body):
        await asyncio.sleep(10 * 0.3)
        return "late"

    with reply_server(never) as server:
        client = ChatClient(server.url, timeout_s=0.3, max_retries=0, max_consecutive_failures=BURST,
                            circuit_retry_s=60)

        async def one_by_one():  # timeouts at ~0.3, 0.6, 0.9, 1.2 s: the 4th spans 0.9 s >= 0.3 s
            return [await client.chat([{"role": "user", "content": "q"}], model="m") for _ in range(BURST + 1)]

        results = asyncio.run(one_by_one())
    assert [r.circuit_open for r in results] == [False] * BURST + [True]  # the 5th fails at once
    assert results[-1].attempts == 0 and "circuit open" in results[-1].error


@pytest.mark.parametrize("reply,message", [
    (lambda: Response("{not json", media_type="application/json"), "reply is not valid JSON"),
    (lambda: Response("<html>busy</html>", media_type="text/html"), "reply is not a chat completion"),
    (lambda: JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}),
     "empty 'choices' list"),
])
def test_garbage_reply_is_a_clear_error(response_server, reply, message):
    response_server["reply"] = reply
    client = ChatClient(response_server["url"], timeout_s=5, max_retries=1, backoff_s=0.01)
    result = asyncio.run(client.chat([{"role": "user", "content": "x"}], model="m"))
    assert not result.ok and message in result.error and result.attempts == 2


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


def test_a_server_that_sends_headers_then_nothing_costs_one_bound_per_item(tmp_path):
    with headers_then_nothing() as server:
        client = ChatClient(server.url, timeout_s=0.4, max_retries=3, backoff_s=0.01, max_consecutive_failures=0)
        start = time.monotonic()
        result = asyncio.run(client.chat([{"role": "user", "content": "x"}], model="m", deadline_s=0.8))
        elapsed = time.monotonic() - start
    assert not result.ok and result.attempts == 2 and elapsed < 1.4, (result, elapsed)  # not 4 × 0.4 s
    assert "gave up after 0.8 s (every try together)" in result.error
    with headers_then_nothing() as server:  # the eval's default bound: 2 × timeout_s per item, all tries
        write_jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", mcq_rows(1))
        start = time.monotonic()
        result = run_eval(stub_eval(tmp_path, server.url, stub_judge(server.url, max_tokens=32), timeout_s=0.4,
                                    max_retries=3, phases=["generate"]))
        elapsed = time.monotonic() - start
    (record,) = [json.loads(x) for x in (tmp_path / "run" / "generations" / "mmlu_anatomy.jsonl").open()]
    assert result.failures == {"generate/mmlu_anatomy": 1} and record["attempts"] <= 2  # not 4
    assert elapsed < 3.0 and "gave up after 0.8 s" in record["error"]  # 4 tries of 0.4 s + backoff: > 3.3 s


def test_a_redirect_to_another_origin_is_refused(stub):
    from starlette.responses import RedirectResponse

    async def moved(request: Request):
        return RedirectResponse(f"{stub.url}/chat/completions", status_code=307)

    app = Starlette(routes=[Route("/v1/chat/completions", moved, methods=["POST"])])
    with LoopbackServer(app) as server:
        client = ChatClient(server.url, timeout_s=2, max_retries=2, backoff_s=0.01)
        result = asyncio.run(client.chat([{"role": "user", "content": "x"}], model="m"))
    assert stub.counts["requests"] == 0 and result.attempts == 1  # not followed, not retried
    assert "redirected (307) to another origin" in result.error and stub.url.split("/v1")[0] in result.error
