"""Judge backend for any OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp server, OpenRouter).

Requests run concurrently up to `max_concurrency`, round-robin over `base_urls`; each is retried with
exponential backoff (capped) on HTTP errors, timeouts and unparsable verdicts. After the last try the
sample gets a Verdict with `error` set — never a made-up 0.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random

import openai

from medix.config import JudgeConfig
from medix.judge.parse import parse_verdict
from medix.judge.types import Verdict

# Client errors that retrying cannot fix (bad key, unknown model, malformed request).
_FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError, openai.BadRequestError)


class OpenAIBackend:
    method = "chat"

    def __init__(self, config: JudgeConfig):
        self.config = config
        api_key = os.environ.get(config.api_key_env) or "EMPTY"
        # The SDK's own retries are off: ours count unparsable verdicts too and keep one budget per sample.
        self.clients = [
            openai.AsyncOpenAI(base_url=url, api_key=api_key, max_retries=0, timeout=config.timeout_s)
            for url in config.base_urls
        ]
        self._next_client = itertools.cycle(range(len(self.clients)))
        self._slots: asyncio.Semaphore | None = None

    async def verdicts(self, prompts: list[str]) -> list[Verdict]:
        if self._slots is None:  # created on the judge's event loop
            self._slots = asyncio.Semaphore(self.config.max_concurrency)
        return list(await asyncio.gather(*(self._one(p) for p in prompts)))

    async def _one(self, prompt: str) -> Verdict:
        cfg, error = self.config, "no attempt made"
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                delay = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))  # jitter spreads retry bursts
            client = self.clients[next(self._next_client)]
            try:
                async with self._slots:
                    response = await asyncio.wait_for(
                        client.chat.completions.create(
                            model=cfg.model,
                            messages=[{"role": "user", "content": prompt}],
                            temperature=cfg.temperature,
                            max_tokens=cfg.max_tokens,
                        ),
                        timeout=cfg.timeout_s,
                    )
            except _FATAL as err:
                return Verdict(None, error=f"{err.__class__.__name__}: {_short(err)}", attempts=attempt + 1)
            except (openai.APIError, asyncio.TimeoutError, ValueError) as err:
                error = f"{err.__class__.__name__}: {_short(err)}"
                continue
            text = _content(response)
            score = parse_verdict(text)
            if score is not None:
                return Verdict(score, raw=text, attempts=attempt + 1)
            error = f"unparsable verdict: {text!r:.120}"
        return Verdict(None, error=error, attempts=cfg.max_retries + 1)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.close()


def _content(response) -> str | None:
    try:
        return response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None


def _short(err: Exception) -> str:
    return (str(err).splitlines() or [""])[0][:200] or "timed out"
