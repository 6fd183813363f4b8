"""Deterministic loopback OpenAI-compatible servers whose every reply a test chooses.

`reply_server(reply)` answers each chat completion with `reply(body)` (or `await reply(body)` when it is a
coroutine function, e.g. one that sleeps past the client's timeout): a text, or None for an HTTP 500. Unlike
the seeded fault rates of `medix.testing.stub_server.JudgeStub`, a test chooses exactly which request fails.
`reply_app(content)` answers every request the same (also raw JSON no encoder writes, or an error status);
`echo_auth_server()` repeats the Authorization header it got; `headers_then_nothing()` stalls after the headers.
"""

from __future__ import annotations

import inspect
import json
import time
from typing import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
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


def reply_app(content: str | None = None, raw_json: str | None = None, status: int = 200) -> Starlette:
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
