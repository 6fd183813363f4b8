"""The one OpenAI-compatible chat client of medix: judge, eval generation and `medix infer --server`.

    client = ChatClient(["http://127.0.0.1:8000/v1"], api_key_env="MEDIX_JUDGE_API_KEY", timeout_s=60)
    result = await client.chat([{"role": "user", "content": "..."}], model="m", max_tokens=8)
    result.text, result.value, result.error, result.attempts

What it owns: clients over several base URLs (round-robin), the API key read from a named environment
variable, a per-request timeout, bounded concurrency, the errors not worth retrying (bad key, forbidden,
unknown model, malformed request), capped exponential backoff with jitter, a circuit breaker, and short
reply and error texts with the API key, the URLs' passwords and anything that looks like a bearer token or
`sk-` key redacted (`medix.redact`).

Circuit breaker: after `max_consecutive_failures` tries in a row (across all requests) that got no reply
at all (timeouts, connection errors) and span at least `timeout_s`, every call fails at once with
`ChatResult.circuit_open` set and an error naming the servers and the count, instead of each waiting its
own timeout × retries (a dead judge would cost hours). The time span keeps a busy server, whose first
burst times out but whose retries are answered, from tripping it. Any reply closes it again; while open,
one try every `circuit_retry_s` is let through as a probe.
The SDK's own retries are off: ours also retry a reply the caller cannot use (`accept` returns None), and
keep one budget per request. Clients are created on the running event loop and re-created when a new loop
uses them (httpx connections belong to one loop), so a sync caller may wrap each call in `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import openai

from medix.errors import MedixError
from medix.redact import display_url, redact, url_secrets


class CrossOriginRedirect(openai.OpenAIError):
    """A server redirected to another origin: refused, since the request and its key would go there."""


async def _refuse_cross_origin(response) -> None:
    """httpx response hook (it runs before a redirect is followed)."""
    if response.has_redirect_location:
        source = response.request.url
        target = source.join(response.headers["location"])
        if (target.scheme, target.host, target.port) != (source.scheme, source.host, source.port):
            raise CrossOriginRedirect(f"{display_url(str(source))} redirected ({response.status_code}) to another "
                                      f"origin, {display_url(str(target))}; refused. If that server is the one you "
                                      "mean, give it as the base URL")


# Retrying cannot fix these: the key, the permission, the model name or the request itself is wrong.
FATAL_ERRORS = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError,
                openai.BadRequestError, CrossOriginRedirect)
# Worth another try: 5xx / 429, connection errors, timeouts, and a server that returned garbage.
RETRYABLE_ERRORS = (openai.APIError, asyncio.TimeoutError, ValueError, IndexError, AttributeError, TypeError)

# The server did not answer at all: what the circuit breaker counts.
UNREACHABLE_ERRORS = (openai.APIConnectionError, asyncio.TimeoutError)  # APITimeoutError is a connection error


class CircuitOpen(MedixError):
    """Raised by `ChatClient.check_circuit` when the servers stopped answering."""


def short_error(err: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """`ClassName: first line of the message` (at most 200 characters, secrets redacted first)."""
    if isinstance(err, json.JSONDecodeError):
        return f"BadReply: the server's reply is not valid JSON ({err.msg} at character {err.pos})"
    first = redact((str(err).splitlines() or [""])[0], secrets)[:200]
    if not first and isinstance(err, asyncio.TimeoutError):
        first = "timed out"
    return f"{err.__class__.__name__}: {first}"


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Delay before retry number `attempt` (1-based): base·2^(attempt−1), capped, times a jitter in [0.5, 1)
    so that requests failing together do not retry in lock-step."""
    return min(cap_s, base_s * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


class BadReply(ValueError):
    """A reply that arrived but is not a chat completion with a message (retried like garbage text)."""


def reply_text(response) -> str:
    """The first choice's message content; anything else raises BadReply saying what was wrong."""
    if isinstance(response, (str, bytes, list, dict)):
        raise BadReply(f"the server's reply is not a chat completion: {str(response)[:80]!r}")
    choices = getattr(response, "choices", None)
    if not choices:
        raise BadReply("the server's reply has an empty 'choices' list")
    message = getattr(choices[0], "message", None)
    if message is None:
        raise BadReply("the server's reply has no message in its first choice")
    return message.content or ""


@dataclass
class ChatResult:
    text: str | None  # the last reply's text (None if no reply arrived)
    value: Any = None  # what `accept` made of the text; None = failed
    error: str | None = None  # why it failed after every attempt
    attempts: int = 0  # HTTP calls made, retries included
    rejected: int = 0  # replies that arrived but `accept` could not use (each one was retried)
    response: Any = None  # the last completion object (e.g. for its logprobs)
    circuit_open: bool = False  # failed at once: the servers stopped answering (see ChatClient.circuit_error)

    @property
    def ok(self) -> bool:
        return self.error is None


class ChatClient:
    """Chat completions over `base_urls` with retries; see the module docstring."""

    def __init__(self, base_urls: list[str] | str, api_key_env: str | None = None, timeout_s: float = 60.0,
                 max_retries: int = 3, backoff_s: float = 0.5, max_backoff_s: float = 8.0,
                 max_concurrency: int = 64, max_consecutive_failures: int = 8, circuit_retry_s: float = 30.0):
        self.base_urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        self.api_key = (os.environ.get(api_key_env) if api_key_env else None) or "EMPTY"
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.max_concurrency = max_concurrency
        self.max_consecutive_failures, self.circuit_retry_s = max_consecutive_failures, circuit_retry_s
        self._failures = 0  # tries in a row, across requests, that got no reply (timeout / connection error)
        self._first_failure_at = 0.0  # when that run of failures began
        self._failed_urls: dict[str, None] = {}  # which servers they came from, in order
        self._opened_at: float | None = None  # when the circuit opened; None = closed
        self._probing = False
        self.circuit_error: str | None = None  # why the circuit is open
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: list[openai.AsyncOpenAI] = []
        self._slots: asyncio.Semaphore | None = None
        self._next = itertools.cycle(range(len(self.base_urls)))
        self.secrets = (self.api_key, *url_secrets(self.base_urls))  # redacted from every text that comes back

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new loop (e.g. one asyncio.run per sync call)
            self._loop = loop
            self._clients = [openai.AsyncOpenAI(base_url=u, api_key=self.api_key, max_retries=0, timeout=self.timeout_s,
                                                http_client=openai.DefaultAsyncHttpxClient(
                                                    event_hooks={"response": [_refuse_cross_origin]}))
                             for u in self.base_urls]
            self._slots = asyncio.Semaphore(self.max_concurrency)

    @property
    def slots(self) -> asyncio.Semaphore:
        """The concurrency bound; a caller holding one slot for a whole conversation passes `hold_slot=False`."""
        self._bind()
        return self._slots

    async def chat(self, messages: list[dict], *, accept: Callable[[str], Any] | None = None,
                   hold_slot: bool = True, client_index: int | None = None,
                   rejected_as: str = "unusable reply", deadline_s: float | None = None, **params) -> ChatResult:
        """One chat completion, retried until `accept(text)` is not None (default: any text). `deadline_s`
        bounds every try together (each try's timeout is cut to the time left), not just each one."""
        self._bind()
        started = time.monotonic()
        accept = accept or (lambda text: text)
        result = ChatResult(text=None, error="no attempt made")
        secrets = self.secrets
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(backoff_delay(attempt, self.backoff_s, self.max_backoff_s))
            left = self.timeout_s if deadline_s is None else min(self.timeout_s, deadline_s - (time.monotonic() - started))
            if left <= 0:
                result.error = f"{result.error}; gave up after {deadline_s:g} s (every try together)"
                return result
            # Round-robin per call; a pinned conversation moves to the next server only on a retry.
            index = next(self._next) if client_index is None else (client_index + attempt) % len(self._clients)
            try:
                async with (self._slots if hold_slot else contextlib.nullcontext()):
                    if self._circuit_blocks():  # checked after the wait for a slot: it may have opened meanwhile
                        result.error, result.circuit_open = self.circuit_error, True
                        return result
                    result.attempts += 1
                    response = await asyncio.wait_for(
                        self._clients[index].chat.completions.create(messages=messages, **params),
                        timeout=left)
            except UNREACHABLE_ERRORS as err:
                result.error = short_error(err, secrets)
                self._unreachable(self.base_urls[index], result.error)
                continue
            except FATAL_ERRORS as err:
                self._answered()
                result.error = short_error(err, secrets)
                return result
            except RETRYABLE_ERRORS as err:
                self._answered()
                result.error = short_error(err, secrets)
                continue
            self._answered()
            try:
                text = redact(reply_text(response), secrets)  # an echoed key never reaches a record
            except BadReply as err:
                result.error = short_error(err, secrets)
                continue
            result.text, result.response = text, response
            value = accept(text)
            if value is not None:
                result.value, result.error = value, None
                return result
            result.rejected += 1
            result.error = f"{rejected_as}: {redact(text, secrets)!r:.120}"
        return result

    def _circuit_blocks(self) -> bool:
        """True while the circuit is open, except for one probe call every `circuit_retry_s`."""
        if self._opened_at is None:
            return False
        if not self._probing and time.monotonic() - self._opened_at >= self.circuit_retry_s:
            self._probing = True
            return False
        return True

    def _unreachable(self, url: str, error: str) -> None:
        """A try got no reply at all. The circuit opens after `max_consecutive_failures` of them in a row that
        span at least `timeout_s`: a busy server whose first burst times out answers the retries within that
        time; a dead one does not. A failed probe reopens it at once."""
        now = time.monotonic()
        if not self._failures:
            self._first_failure_at = now
        self._failures += 1
        self._failed_urls[display_url(url)] = None
        if not self.max_consecutive_failures or self._failures < self.max_consecutive_failures:
            return
        if self._opened_at is not None or now - self._first_failure_at >= self.timeout_s:
            self.circuit_error = (f"circuit open: {', '.join(self._failed_urls)} did not answer {self._failures} "
                                  f"requests in a row over {now - self._first_failure_at:.0f} s (last: {error}); "
                                  "no further requests are sent")
            self._opened_at, self._probing = now, False

    def _answered(self) -> None:
        """A reply arrived (even an HTTP error): the server is up, the circuit closes."""
        self._failures, self._failed_urls = 0, {}
        self._opened_at, self._probing, self.circuit_error = None, False, None

    def check_circuit(self) -> None:
        """Raise CircuitOpen (a MedixError) when the servers stopped answering."""
        if self.circuit_error:
            raise CircuitOpen(self.circuit_error)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()
        self._clients, self._loop = [], None
