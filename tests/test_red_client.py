"""The circuit breaker's time-span rule (chat_client.py, docs/reliability.md row 8), issue 17 item 7.

The rule: the circuit opens after `max_consecutive_failures` tries in a row that got no reply AND span at
least `timeout_s`. A busy server whose first burst of requests all time out together (well within one
timeout of each other) but whose retries are answered must not trip it; the same count of timeouts spread
over more than one timeout, with no reply between them, must.
"""

import asyncio

from red_servers import reply_server

from medix.chat_client import ChatClient

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
