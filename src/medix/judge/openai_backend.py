"""Judge backend for any OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp server, OpenRouter).

Requests go through `medix.chat_client.ChatClient` (load-balanced over `base_urls`, bounded concurrency,
capped backoff with jitter; an unparsable verdict is retried like an HTTP error). After the last try the
sample gets a Verdict with `error` set — never a made-up 0.
  one-turn      every prompt is one request, all in flight together up to `max_concurrency`.
  conversation  every sample is its own conversation holding one concurrency slot; each round is one
                request to the server of the first round (its prompt prefix is cached there); a round that
                still fails after its retries fails the sample. Once the circuit breaker opens, the
                conversations still running are cancelled (their requests are dropped, not left running on
                the server) and come back as circuit-open failures.
With `logprobs` on, both modes ask for the verdict token's top logprobs. A server that returns none
(`transformers serve` ignores the fields) is noted once, in the log and as `logprobs_available = False`,
which puts `p_yes: unavailable` into the judge identity; verdicts are then read from the text.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import AsyncIterator

from medix.chat_client import ChatClient
from medix.judge.config import JudgeConfig
from medix.safe_text import display_url
from medix.judge.parse import VERDICT_WORDS, combine_rounds, in_thinking, parse_reply, parse_verdict
from medix.judge.types import Conversation, Verdict


log = logging.getLogger(__name__)


def verdict_probability(response) -> float | None:
    """P(YES) from the logprobs of the reply's verdict token: the first generated token after any think
    block that reads YES or NO; its top alternatives give p = Σ P(yes spellings) / Σ P(yes + no spellings).
    None when the server sent no logprobs or no verdict token has them."""
    try:
        tokens = response.choices[0].logprobs.content or []
    except (AttributeError, IndexError, TypeError):
        return None
    seen, thinking = "", False
    for token in tokens:
        seen += token.token
        if ">" in token.token:  # only a tag's closing bracket can open or close a think block
            thinking = in_thinking(seen)
        if thinking:
            continue  # inside the reasoning (<think> or <thinking>, as parse_verdict skips it)
        word = token.token.strip().strip('*"\'').lower()
        if word in VERDICT_WORDS:
            mass = dict.fromkeys(VERDICT_WORDS, 0.0)
            for alt in token.top_logprobs or [token]:
                alt_word = alt.token.strip().strip('*"\'').lower()
                if alt_word in mass:
                    mass[alt_word] += math.exp(alt.logprob)
            total = sum(mass.values())
            return mass["yes"] / total if total > 0 else None
    return None


class OpenAIBackend:
    def __init__(self, config: JudgeConfig):
        self.config = config
        self.logprobs_available: bool | None = None  # None: no reply yet (or logprobs not requested)
        self.client = ChatClient(config.base_urls, config.api_key_env, config.timeout_s, config.max_retries,
                                 config.backoff_s, config.max_backoff_s, config.max_concurrency,
                                 config.max_consecutive_failures)

    @property
    def params(self) -> dict:
        params = {"model": self.config.model, "temperature": self.config.temperature,
                  "max_tokens": self.config.max_tokens}
        if self.config.thinking != "auto":  # vLLM / SGLang read it; other servers ignore extra fields
            params["extra_body"] = {"chat_template_kwargs": {"enable_thinking": self.config.thinking == "on"}}
        if self.config.logprobs:
            params.update(logprobs=True, top_logprobs=10)
        return params

    def note_logprobs(self, response, server: int | None) -> float | None:
        """P(YES) of a reply (None: no reply arrived); the first reply without any logprobs is noted once
        (log + identity)."""
        if not self.config.logprobs or response is None:
            return None
        try:
            sent = response.choices[0].logprobs is not None
        except (AttributeError, IndexError, TypeError):
            sent = False
        if not sent and self.logprobs_available is None:
            url = display_url(self.client.base_urls[server or 0])
            log.warning("judge server %s returned no logprobs (model '%s'): P(YES) is unavailable; verdicts "
                        "are read from the reply text (judge identity: p_yes: unavailable)", url, self.config.model)
        if self.logprobs_available is None or not sent:
            self.logprobs_available = sent
        return verdict_probability(response)

    def first_turn(self, prompt: str) -> dict:
        """The opening user message; with thinking off it ends with Qwen3's `/no_think` switch."""
        suffix = " /no_think" if self.config.thinking == "off" else ""
        return {"role": "user", "content": prompt + suffix}

    async def probe(self) -> None:
        """One request of one token, to learn whether the server returns logprobs."""
        result = await self.client.chat([self.first_turn("Reply YES.")], max_retries=0,
                                        **{**self.params, "max_tokens": 1})
        self.note_logprobs(result.response, result.server)

    async def verdicts(self, prompts: list[str]) -> list[Verdict]:
        return list(await asyncio.gather(*(self._one(p) for p in prompts)))

    async def _one(self, prompt: str) -> Verdict:
        result = await self.client.chat([self.first_turn(prompt)], accept=parse_verdict,
                                       rejected_as="unparsable verdict", **self.params)
        p_yes = self.note_logprobs(result.response, result.server)  # also noted when the verdict was unusable
        if not result.ok:
            return Verdict(None, error=result.error, attempts=result.attempts, parse_failures=result.rejected,
                           circuit_open=result.circuit_open)
        return Verdict(result.value, raw=result.text, attempts=result.attempts, parse_failures=result.rejected,
                       p_yes=p_yes)

    async def converse(self, conversations: list[Conversation], rounds: int) -> AsyncIterator[tuple[int, Verdict]]:
        async def one(i: int) -> tuple[int, Verdict]:
            async with self.client.slots:  # one slot per conversation: its rounds are sequential anyway
                return i, await self._conversation(conversations[i], rounds)

        tasks = {asyncio.ensure_future(one(i)): i for i in range(len(conversations))}
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
                error = self.client.circuit_error
                if error:  # the judge stopped answering: drop what is still running
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    for task in pending:
                        yield tasks[task], Verdict(None, error=error, circuit_open=True)
                    return
        finally:  # the phase stopped (an error, Ctrl-C): nothing keeps running on the server
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _conversation(self, conv: Conversation, rounds: int) -> Verdict:
        messages = [self.first_turn(conv.first)]
        verdict, server = Verdict(None), None
        for round_no in range(rounds):
            if round_no:
                messages.append({"role": "user", "content": conv.followup})
            result = await self.client.chat(messages, accept=lambda text: parse_reply(conv.kind, text, conv.readout),
                                            hold_slot=False, client_index=server,
                                            rejected_as="unparsable verdict", **self.params)
            verdict.attempts += result.attempts
            verdict.parse_failures += result.rejected
            p_yes = self.note_logprobs(result.response, result.server)
            if not result.ok:
                verdict.error = f"round {round_no + 1}: {result.error}"
                verdict.circuit_open = result.circuit_open
                return verdict
            server = result.server
            if round_no == 0 and conv.kind == "binary":
                verdict.p_yes = p_yes  # recorded only: the rounds' majority decides, as in the paper
            verdict.rounds.append(result.value)
            verdict.raws.append(result.text)
            messages.append({"role": "assistant", "content": result.text})
        verdict.score = combine_rounds(conv.kind, verdict.rounds)
        verdict.raw = verdict.raws[-1] if verdict.raws else None
        return verdict

    async def aclose(self) -> None:
        await self.client.aclose()
