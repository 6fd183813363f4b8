"""Deterministic loopback OpenAI-compatible servers for the tests that go red (tests/test_red_*.py).

`reply_server(reply)` answers each chat completion with `reply(body)` (or `await reply(body)` when it is a
coroutine function, e.g. one that sleeps past the client's timeout): a text, or None for an HTTP 500. Unlike
the seeded fault rates of `medix.testing.stub_server.JudgeStub`, a test chooses exactly which request fails.
"""

from __future__ import annotations

import inspect
import json
import time
from typing import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from medix.testing.stub_server import LoopbackServer


def completion(text: str, model: str = "stub") -> dict:
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
    return {"id": "t", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [choice], "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}}


def user_text(body: dict) -> str:
    """Every user turn of a request as one JSON string (text or multimodal content alike)."""
    return json.dumps([m.get("content") for m in body.get("messages", []) if m.get("role") == "user"])


def reply_server(reply: Callable[[dict], str | None]) -> LoopbackServer:
    async def completions(request: Request):
        body = await request.json()
        text = reply(body)
        if inspect.isawaitable(text):
            text = await text
        if text is None:
            return PlainTextResponse("planted failure", status_code=500)
        return JSONResponse(completion(text, body.get("model", "stub")))

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": "stub", "object": "model"}]})

    return LoopbackServer(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"]),
                                            Route("/v1/models", models)]))


def echo_auth_server() -> LoopbackServer:
    """A policy server whose normal 200 reply repeats the Authorization header it got (`your header was ...`)."""
    async def completions(request: Request):
        body = await request.json()
        return JSONResponse(completion(f"<answer>A</answer> (your header was {request.headers.get('authorization')})",
                                       body.get("model", "m")))

    return LoopbackServer(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])]))


def headers_then_nothing(seconds: float = 3.0) -> LoopbackServer:
    """A server that answers every request with 200 headers and then sends no body for `seconds`."""
    import asyncio

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
        await asyncio.sleep(seconds)

    return LoopbackServer(app)
