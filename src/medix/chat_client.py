"""The one OpenAI-compatible chat client of medix: judge, eval generation and `medix infer --server`.

    client = ChatClient(["http://127.0.0.1:8000/v1"], api_key_env="MEDIX_JUDGE_API_KEY", timeout_s=60)
    result = await client.chat([{"role": "user", "content": "..."}], model="m", max_tokens=8)
    result.text, result.value, result.error, result.attempts

What it owns: clients over several base URLs (load-balanced), the API key read from a named environment
variable, a per-request timeout, bounded concurrency that backs off on timeouts, the errors not worth
retrying (bad key, forbidden, unknown model, malformed request), capped exponential backoff with jitter, a
circuit breaker, and short error texts naming the server, the model, the HTTP status and the server's own
reason; reply and error texts have the API key, the URLs' passwords and anything that looks like a bearer
token or `sk-` key redacted (`medix.safe_text.redact`).

Several servers (data parallel): each try goes to the server with the fewest requests in flight (a slow
server gets fewer, not an equal share as round-robin would give it); a retry goes to another server than
the one that just failed; a server that misses `SERVER_DOWN_AFTER` tries in a row is left out (one probe
every `circuit_retry_s`) and listed in `server_errors`, so a dead server's requests finish on the others.
Concurrency: `max_concurrency` per server. A burst of timeouts lowers the number allowed in flight to half,
or to the replies of the last `timeout_s` when fewer (not below 1), and answered requests win it back (+1
per `limit` replies): a server slower than the client expected gets fewer requests at once instead of every
one of them timing out. While the server answered anything within the last two timeouts (slow, not dead),
a cut restarts the circuit breaker's count, so the breaker judges the lowered concurrency afresh; a server
that answers nothing at all trips it as before.

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
import collections
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import openai

from medix.errors import MedixError
from medix.safe_text import display_url, redact, url_secrets, valid_unicode


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


log = logging.getLogger(__name__)
SERVER_DOWN_AFTER = 3  # tries in a row without a reply after which one of several servers is left out

# Retrying cannot fix these: the key, the permission, the model name or the request itself is wrong.
FATAL_ERRORS = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError,
                openai.BadRequestError, CrossOriginRedirect)
# Worth another try: 5xx / 429, connection errors, timeouts, and a server that returned garbage.
RETRYABLE_ERRORS = (openai.APIError, asyncio.TimeoutError, ValueError, IndexError, AttributeError, TypeError)

# The server did not answer at all: what the circuit breaker counts.
UNREACHABLE_ERRORS = (openai.APIConnectionError, asyncio.TimeoutError)  # APITimeoutError is a connection error


class CircuitOpen(MedixError):
    """Raised by `ChatClient.check_circuit` when the servers stopped answering."""


def server_reason(err: BaseException) -> str | None:
    """The server's own words in an HTTP error reply. openai 3.x keeps the reply body in `err.body`, not in
    str(err) (only "Error code: 400"): `{"message": ...}` from OpenAI / vLLM, `{"detail": ...}` from FastAPI
    servers such as `transformers serve`, or plain text."""
    return _body_reason(getattr(err, "body", None))


def _body_reason(body) -> str | None:
    if isinstance(body, str):
        return body.strip() or None
    if not isinstance(body, dict) or not body:
        return None
    for key in ("message", "detail", "error"):
        value = body.get(key)
        if value:
            return _body_reason(value) if isinstance(value, dict) else \
                value if isinstance(value, str) else json.dumps(value)
    return json.dumps(body)


def short_error(err: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """`ClassName: first line of the message` (at most 200 characters, secrets redacted first); an HTTP error
    gives `ClassName: HTTP <status>: <the server's reason>` instead."""
    if isinstance(err, json.JSONDecodeError):
        return f"BadReply: the server's reply is not valid JSON ({err.msg} at character {err.pos})"
    reason = server_reason(err) if isinstance(err, openai.APIStatusError) else None
    if reason is not None:
        return f"{err.__class__.__name__}: HTTP {err.status_code}: {redact(' '.join(reason.split()), secrets)[:300]}"
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
    server: int | None = None  # index of the server of the last try (a conversation stays there)

    @property
    def ok(self) -> bool:
        return self.error is None


class AdaptiveLimit:
    """An async semaphore whose limit backs off on timeouts: `timed_out(answered)` lowers it to half, or to
    `answered` (the replies of the last timeout window: what the server really managed) when that is less,
    not below 1, at most once per `cooldown_s` (one burst of timeouts counts once); `answered()` raises it
    by 1 after every `limit` calls, up to `maximum` (additive increase, multiplicative decrease)."""

    def __init__(self, maximum: int, cooldown_s: float = 1.0):
        self.maximum = self.limit = maximum
        self.cooldown_s = cooldown_s
        self.inflight = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._last_cut = -math.inf
        self._answered = 0

    async def __aenter__(self) -> None:
        while self.inflight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                self._wake()  # pass on a wake-up this waiter will not use
                raise
        self.inflight += 1

    async def __aexit__(self, *exc) -> None:
        self.inflight -= 1
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.inflight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def timed_out(self, answered: int | None = None) -> bool:
        """Lower the limit (see the class docstring); True when it was lowered."""
        now = time.monotonic()
        if self.limit <= 1 or now - self._last_cut < self.cooldown_s:
            return False
        lowered = self.limit // 2 if answered is None else min(self.limit // 2, answered)
        self.limit, self._last_cut, self._answered = max(1, lowered), now, 0
        return True

    def answered(self) -> None:
        if self.limit >= self.maximum:
            return
        self._answered += 1
        if self._answered >= self.limit:
            self.limit, self._answered = self.limit + 1, 0
            self._wake()


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
        self._slots: AdaptiveLimit | None = None
        self._inflight = [0] * len(self.base_urls)  # requests now in flight, per server
        self._misses = [0] * len(self.base_urls)  # tries in a row, per server, that got no reply
        self._down: dict[int, float] = {}  # servers left out -> when last tried
        self._turn = 0  # breaks ties between equally loaded servers, so they take turns
        self._replies: collections.deque[float] = collections.deque(maxlen=4096)  # when replies arrived
        self.server_errors: dict[str, str] = {}  # servers that stopped answering -> their last error
        self.secrets = (self.api_key, *url_secrets(self.base_urls))  # redacted from every text that comes back

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new loop (e.g. one asyncio.run per sync call)
            self._loop = loop
            self._clients = [openai.AsyncOpenAI(base_url=u, api_key=self.api_key, max_retries=0, timeout=self.timeout_s,
                                                http_client=openai.DefaultAsyncHttpxClient(
                                                    event_hooks={"response": [_refuse_cross_origin]}))
                             for u in self.base_urls]
            # one burst of timeouts arrives within moments; the next one a timeout later
            self._slots = AdaptiveLimit(self.max_concurrency * len(self.base_urls), cooldown_s=self.timeout_s / 2)

    @property
    def slots(self) -> AdaptiveLimit:
        """The concurrency bound; a caller holding one slot for a whole conversation passes `hold_slot=False`."""
        self._bind()
        return self._slots

    async def chat(self, messages: list[dict], *, accept: Callable[[str], Any] | None = None,
                   hold_slot: bool = True, client_index: int | None = None,
                   rejected_as: str = "unusable reply", max_retries: int | None = None,
                   deadline_s: float | None = None, **params) -> ChatResult:
        """One chat completion, retried (`max_retries`, default the client's) until `accept(text)` is not None
        (default: any text); `client_index` = the server to try first (a conversation's). `deadline_s` bounds
        every try together (each try's timeout is cut to the time left), not just each one."""
        self._bind()
        started = time.monotonic()
        accept = accept or (lambda text: text)
        result = ChatResult(text=None, error="no attempt made")
        secrets = self.secrets
        index = None
        for attempt in range((self.max_retries if max_retries is None else max_retries) + 1):
            if attempt:
                if self.circuit_error:  # opened meanwhile: fail now rather than after the backoff
                    result.error, result.circuit_open = self.circuit_error, True
                    return result
                await asyncio.sleep(backoff_delay(attempt, self.backoff_s, self.max_backoff_s))
            left = (self.timeout_s if deadline_s is None
                    else min(self.timeout_s, deadline_s - (time.monotonic() - started)))
            if left <= 0:
                result.error = f"{result.error}; gave up after {deadline_s:g} s (every try together)"
                return result
            try:
                async with (self._slots if hold_slot else contextlib.nullcontext()):
                    if self._circuit_blocks():  # checked after the wait for a slot: it may have opened meanwhile
                        result.error, result.circuit_open = self.circuit_error, True
                        return result
                    # A pinned conversation keeps its server while it answers; a retry goes elsewhere.
                    index = self._pick(client_index if not attempt else None, avoid=index if attempt else None)
                    result.attempts, result.server = result.attempts + 1, index
                    response = await self._send(index, messages, params, left)
            except UNREACHABLE_ERRORS as err:
                result.error = self._describe(index, params, err)
                self._unreachable(index, result.error, timed_out=not isinstance(err, openai.APIConnectionError)
                                  or isinstance(err, openai.APITimeoutError))
                continue
            except FATAL_ERRORS as err:
                self._answered(index)
                result.error = self._describe(index, params, err)
                return result
            except RETRYABLE_ERRORS as err:
                self._answered(index)
                result.error = self._describe(index, params, err)
                continue
            self._answered(index)
            try:
                # an echoed key never reaches a record; a lone surrogate never stops the writer
                text = valid_unicode(redact(reply_text(response), secrets))
            except BadReply as err:
                result.error = self._describe(index, params, err)
                continue
            result.text, result.response = text, response
            value = accept(text)
            if value is not None:
                result.value, result.error = value, None
                return result
            result.rejected += 1
            result.error = f"{rejected_as}: {redact(text, secrets)!r:.120}"
        return result

    async def _send(self, index: int, messages: list[dict], params: dict, timeout_s: float):
        self._inflight[index] += 1
        try:
            return await asyncio.wait_for(self._clients[index].chat.completions.create(messages=messages, **params),
                                          timeout=timeout_s)
        finally:
            self._inflight[index] -= 1

    def _describe(self, index: int, params: dict, err: BaseException) -> str:
        """`server URL, model 'M': ClassName: HTTP 400: the server's reason` (secrets redacted)."""
        model = f", model '{params['model']}'" if params.get("model") else ""
        return f"server {display_url(self.base_urls[index])}{model}: {short_error(err, self.secrets)}"

    def _pick(self, prefer: int | None, avoid: int | None) -> int:
        """The server for the next try: `prefer` while it is up, else the one with the fewest requests in
        flight among those up, other than `avoid` (the one that just failed) when there is another. A server
        left out is tried again, as a probe, once every `circuit_retry_s`."""
        now = time.monotonic()
        up = [i for i in range(len(self.base_urls)) if now - self._down.get(i, -math.inf) >= self.circuit_retry_s]
        up = up or list(range(len(self.base_urls)))  # all down: the circuit breaker decides
        if avoid in up and len(up) > 1:
            up.remove(avoid)
        if prefer is not None and prefer in up:
            return self._probe_mark(prefer, now)
        self._turn += 1
        n = len(self.base_urls)
        return self._probe_mark(min(up, key=lambda i: (self._inflight[i], (i - self._turn) % n)), now)

    def _probe_mark(self, index: int, now: float) -> int:
        if index in self._down:
            self._down[index] = now  # one probe per cool-down, not a flood
        return index

    def _circuit_blocks(self) -> bool:
        """True while the circuit is open, except for one probe call every `circuit_retry_s`."""
        if self._opened_at is None:
            return False
        if not self._probing and time.monotonic() - self._opened_at >= self.circuit_retry_s:
            self._probing = True
            return False
        return True

    def _unreachable(self, index: int, error: str, timed_out: bool) -> None:
        """A try got no reply at all. A timeout lowers the concurrency first (`AdaptiveLimit`); a server that
        misses `SERVER_DOWN_AFTER` tries in a row is left out while others remain. The circuit opens after
        `max_consecutive_failures` of them in a row (across servers) that span at least `timeout_s`: a busy
        server whose first burst times out answers the retries within that time; a dead one does not. A
        failed probe reopens it at once."""
        url = display_url(self.base_urls[index])
        if timed_out and self._slots.timed_out(self._recent_replies(self.timeout_s)):
            log.warning("%s timed out after %.3g s: at most %d requests in flight from now on (of %d)", url,
                        self.timeout_s, self._slots.limit, self._slots.maximum)
            if self._recent_replies(2 * self.timeout_s):  # slow, not dead: judge the lowered concurrency afresh
                self._failures, self._failed_urls = 0, {}
        self._misses[index] += 1
        if self._misses[index] >= SERVER_DOWN_AFTER and len(self.base_urls) > 1 and index not in self._down:
            self._down[index] = time.monotonic()
            self.server_errors[url] = error
            log.warning("%s missed %d tries in a row; its requests go to the other servers (last: %s)",
                        url, self._misses[index], error.removeprefix(f"server {url}, "))
        now = time.monotonic()
        if not self._failures:
            self._first_failure_at = now
        self._failures += 1
        self._failed_urls[url] = None
        if not self.max_consecutive_failures or self._failures < self.max_consecutive_failures:
            return
        if self._opened_at is not None or now - self._first_failure_at >= self.timeout_s:
            self.circuit_error = (f"circuit open: {', '.join(self._failed_urls)} did not answer {self._failures} "
                                  f"requests in a row over {now - self._first_failure_at:.0f} s (last: {error}); "
                                  "no further requests are sent")
            self._opened_at, self._probing = now, False

    def _recent_replies(self, window_s: float) -> int:
        """Replies that arrived within the last `window_s` (at most two timeouts are kept)."""
        now = time.monotonic()
        while self._replies and self._replies[0] < now - 2 * self.timeout_s:
            self._replies.popleft()
        return sum(1 for t in self._replies if t >= now - window_s)

    def _answered(self, index: int) -> None:
        """A reply arrived (even an HTTP error): the server is up, the circuit closes."""
        self._misses[index] = 0
        if self._down.pop(index, None) is not None:
            log.warning("%s answers again; it takes requests again", display_url(self.base_urls[index]))
        self._slots.answered()
        self._replies.append(time.monotonic())
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
