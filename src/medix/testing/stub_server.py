"""A simulated OpenAI-compatible judge on 127.0.0.1, for tests and benchmarks (not a real judge).

It answers /v1/chat/completions after a fixed latency with YES iff the quoted candidate and reference
in the medix judge prompt match after normalisation (or, `accept_bait`, a gullible judge that also says
YES to a candidate claiming to be correct), and can inject faults: HTTP 500, a hang past the
client timeout, garbage text, or an HTTP 401 that echoes the Authorization header (a server leaking the
key), each with its own probability. Concurrency is unbounded (asyncio), a stand-in for a batching vLLM
server. `--start-delay` makes the process slow to come up, like a real engine loading weights.

    python -m medix.testing.stub_server --port 8011 --latency 0.2      # separate process (benchmarks)
    with JudgeStub(fail_500=0.1) as stub: ... stub.url ...             # in-process thread (tests)
    with LoopbackServer(starlette_app) as server: ... server.url ...   # any other fake server (tests)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

_QUOTED = {name: re.compile(rf'{name} answer: ("(?:[^"\\]|\\.)*")') for name in ("Reference", "Candidate")}


# What a gullible judge falls for: a candidate that claims to be right instead of answering.
_BAIT = re.compile(r"\b(yes|correct|matches the reference|the answer is right)\b")


def stub_verdict(prompt: str, accept_bait: bool = False) -> str:
    """YES iff candidate and reference (JSON-quoted in the prompt) match after lower-casing; with
    `accept_bait`, also when the candidate only claims to be correct (verdict bait)."""
    found = {k: rx.search(prompt) for k, rx in _QUOTED.items()}
    if not all(found.values()):
        return "NO"
    ref, cand = (json.loads(found[k].group(1)).strip().lower().rstrip(".") for k in ("Reference", "Candidate"))
    if accept_bait and _BAIT.search(cand):
        return "YES"
    return "YES" if ref == cand or (len(ref) > 3 and ref in cand) else "NO"


_REPORT = {name: re.compile(rf'{name} report: ("(?:[^"\\]|\\.)*")') for name in ("Reference", "Candidate")}


def stub_reply(messages: list[dict], accept_bait: bool = False) -> str:
    """Multi-turn judging: the verdict for the conversation's first user turn, repeated on every follow-up.

    Binary prompts get YES/NO as in `stub_verdict` (`{"score": 1}` / `{"score": 0}` when the prompt asks
    for a JSON score, as the paper protocol's does); rubric prompts (quoted `Reference report:` /
    `Candidate report:`) get `{"score": 5}` when the reports match, else `{"score": 1}`.
    """
    first = next((m["content"] for m in messages if m.get("role") == "user"), "")
    first = first if isinstance(first, str) else ""
    found = {k: rx.search(first) for k, rx in _REPORT.items()}
    if all(found.values()):
        ref, cand = (json.loads(found[k].group(1)).strip().lower() for k in ("Reference", "Candidate"))
        return '{"score": 5}' if ref == cand else '{"score": 1}'
    verdict = stub_verdict(first if len(messages) > 1 else messages[-1]["content"], accept_bait)
    if '{"score"' in first:
        return '{"score": 1}' if verdict == "YES" else '{"score": 0}'
    return verdict


def policy_reply(answer: str) -> str:
    """What the simulated policy server writes: the MediX-R1 format around a fixed answer."""
    return f"<OTHER> <think>simulated reasoning</think> <answer>{answer}</answer>"


@dataclass
class StubSettings:
    latency_s: float = 0.0
    fail_500: float = 0.0  # probability of an HTTP 500
    hang: float = 0.0  # probability of sleeping hang_s before answering (a client timeout)
    hang_s: float = 30.0
    garbage: float = 0.0  # probability of answering text with no verdict
    echo_auth: float = 0.0  # probability of an HTTP 401 whose message repeats the Authorization header
    seed: int = 0
    role: str = "judge"  # "judge": verdicts (stub_reply); "policy": formatted answers (policy_reply)
    policy_answer: str = "A"  # the answer a "policy" stub gives to every question
    max_inflight: int = 0  # > 0: at most this many requests are served at once (a batching server's capacity)
    # "plain": YES / NO; "thinking": a think block arguing the opposite, then the verdict, as Qwen3 would;
    # "unclosed": a think block cut off by max_tokens (finish_reason "length"), never a verdict.
    style: str = "plain"
    accept_bait: bool = False  # a gullible judge: YES to candidates that only claim to be correct
    logprobs: bool = True  # False: ignore `logprobs` in requests, as `transformers serve` does
    served_model: str | None = None  # set: any other model name gets HTTP 400 with FastAPI's {"detail": ...}
    bodies: list = field(default_factory=list)  # the last request bodies (up to 50), to check what was sent
    dropped: list = field(default_factory=list)  # hung requests the client gave up on: seconds after arrival
    counts: dict = field(default_factory=lambda: {"requests": 0, "ok": 0, "500": 0, "hang": 0, "garbage": 0,
                                                  "echo_auth": 0})


def build_app(settings: StubSettings) -> Starlette:
    rng = random.Random(settings.seed)
    capacity = asyncio.Semaphore(settings.max_inflight) if settings.max_inflight else None

    async def completions(request: Request):
        body = await request.json()
        if settings.echo_auth and rng.random() < settings.echo_auth:  # no roll when off: seeded runs unchanged
            settings.counts["echo_auth"] += 1
            message = f"invalid API key in header: {request.headers.get('authorization')}"
            return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=401)
        if settings.served_model and body.get("model") != settings.served_model:
            return JSONResponse({"detail": f"Server is pinned to '{settings.served_model}'; requested "
                                           f"'{body.get('model')}'."}, status_code=400)
        if capacity is None:
            return await _serve(body, request)
        async with capacity:
            return await _serve(body, request)

    async def _serve(body: dict, request: Request):
        settings.counts["requests"] += 1
        settings.bodies[:] = [*settings.bodies[-49:], body]
        roll = rng.random()
        await asyncio.sleep(settings.latency_s)
        if roll < settings.fail_500:
            settings.counts["500"] += 1
            return PlainTextResponse("simulated failure", status_code=500)
        roll -= settings.fail_500
        if roll < settings.hang:
            settings.counts["hang"] += 1
            await _hang(request, settings)
        elif roll - settings.hang < settings.garbage:
            settings.counts["garbage"] += 1
            return JSONResponse(_completion(body, "~~ lorem ipsum ~~", logprobs=settings.logprobs))
        settings.counts["ok"] += 1
        if settings.role == "policy":
            return JSONResponse(_completion(body, policy_reply(settings.policy_answer), logprobs=settings.logprobs))
        verdict = stub_reply(body["messages"], settings.accept_bait)
        return JSONResponse(_completion(body, *_styled(settings.style, verdict), logprobs=settings.logprobs))

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": "stub-judge", "object": "model"}]})

    async def stats(request: Request):
        return JSONResponse(settings.counts)

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"]),
                             Route("/v1/models", models), Route("/stats", stats)])


async def _hang(request: Request, settings: "StubSettings") -> None:
    """Sleep `hang_s`, noting in `settings.dropped` after how many seconds the client hung up, if it did."""
    start = time.monotonic()
    while time.monotonic() - start < settings.hang_s:
        if await request.is_disconnected():
            settings.dropped.append(time.monotonic() - start)
            return
        await asyncio.sleep(0.05)


def _styled(style: str, verdict: str) -> tuple[str, str]:
    """(reply text, finish_reason) for a plain verdict in the given style."""
    if style == "unclosed":
        return "<think>\nThe candidate says yes but the reference says no, so I", "length"
    if style == "thinking":  # reasoning that argues the other way, then the verdict in the asked-for form
        if verdict.startswith("{"):
            return f"<think>\nIs it a 0? No.\n</think>\n\n{verdict}", "stop"
        opposite = "no" if verdict == "YES" else "yes"
        return f"<think>\nMaybe the answer is {opposite}... let me check.\n</think>\n\n{verdict}", "stop"
    return verdict, "stop"


def _logprobs(text: str) -> dict:
    """OpenAI-style logprobs, as a real engine sends for any reply: a YES / NO reply's verdict token at
    P = 0.8 with the other at 0.2; any other reply one token per word at P = 1."""
    if text not in ("YES", "NO"):
        return {"content": [{"token": word, "logprob": 0.0, "bytes": None, "top_logprobs": []}
                            for word in text.split(" ")]}
    other = "NO" if text == "YES" else "YES"
    top = [{"token": text, "logprob": math.log(0.8), "bytes": None},
           {"token": other, "logprob": math.log(0.2), "bytes": None}]
    return {"content": [{"token": text, "logprob": math.log(0.8), "bytes": None, "top_logprobs": top}]}


def _completion(body: dict, text: str, finish_reason: str = "stop", logprobs: bool = True) -> dict:
    choice = {"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": text}}
    if body.get("logprobs") and logprobs:
        choice["logprobs"] = _logprobs(text)
    return {
        "id": "stub", "object": "chat.completion", "created": int(time.time()), "model": body.get("model", "stub"),
        "choices": [choice],
        "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackServer:
    """Serve any ASGI `app` from a background thread on a free 127.0.0.1 port; `url` is the OpenAI base URL."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("loopback server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class JudgeStub(LoopbackServer):
    """The simulated judge (or policy) in a background thread; `url` is the OpenAI base URL."""

    def __init__(self, **settings):
        self.settings = StubSettings(**settings)
        super().__init__(build_app(self.settings))

    @property
    def counts(self) -> dict:
        return self.settings.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    parser.add_argument("--fail-500", type=float, default=0.0)
    parser.add_argument("--garbage", type=float, default=0.0)
    parser.add_argument("--role", choices=("judge", "policy"), default="judge")
    parser.add_argument("--max-inflight", type=int, default=0, help="requests served at once (0 = unbounded)")
    parser.add_argument("--start-delay", type=float, default=0.0, help="seconds before the port opens")
    args = parser.parse_args()
    time.sleep(args.start_delay)
    settings = StubSettings(latency_s=args.latency, fail_500=args.fail_500, garbage=args.garbage, role=args.role,
                            max_inflight=args.max_inflight)
    uvicorn.run(build_app(settings), host="127.0.0.1", port=args.port, log_level="error", backlog=4096)


if __name__ == "__main__":
    main()
