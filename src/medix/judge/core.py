"""`Judge`: one judge, two modes, two backends.

    judge = Judge(JudgeConfig(backend="local"))
    judge.judge([JudgeRequest(candidate="pneumonia", reference="lobar pneumonia")])   # one-turn (reward)
    judge.converse([JudgeRequest(..., kind="rubric")], rounds=3)                     # conversation (eval)

one-turn      render (binary.jinja), deduplicate, consult the SQLite cache, ask the backend for the rest.
conversation  the paper's evaluation protocol: a first question, then a re-evaluation request after each
              reply, all in ONE conversation; binary = majority of the rounds, rubric = their mean.
              Verdicts stream out as each conversation finishes (`on_verdict`), for crash-safe records.

Prompts are Jinja templates (`judge/prompts.py`); what makes two judges different is `judge/identity.py`.

The judge owns a private event loop on a daemon thread, so the same object can be used from plain code
(`judge.judge(...)`), from async code on any loop (`await judge.ajudge(...)`, e.g. TRL's async reward
loop) and across many calls, without HTTP clients ever changing loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
from typing import Callable


from medix.backends import get_backend
from medix.judge.config import JudgeConfig
from medix.files import cache_dir
from medix.judge.cache import VerdictCache, cache_keys
from medix.judge.identity import judge_identity
from medix.judge.prompts import CONVERSATION_TEMPLATES, ONE_TURN, PAPER_TEMPLATES, TEMPLATE_VERSIONS, Prompts
from medix.judge.types import (LOCAL_RESERVE_TOKENS, MIN_CONTEXT, JudgeBackend,
                               JudgeRequest, Verdict)

log = logging.getLogger(__name__)


def make_backend(config: JudgeConfig) -> JudgeBackend:
    return get_backend(config.backend).judge_backend(config)


class Judge:
    def __init__(self, config: JudgeConfig | None = None, backend: JudgeBackend | None = None):
        self.config = config or JudgeConfig()
        self.prompts = Prompts(ONE_TURN, self.config.template)
        self.conversation_prompts = {
            "medix": Prompts(CONVERSATION_TEMPLATES, self.config.template, self.config.rubric_template),
            "paper": Prompts(PAPER_TEMPLATES, self.config.template, self.config.rubric_template, readout="json_score"),
        }
        self._record = get_backend(self.config.backend)  # the backend's table row: served? how it reads a verdict
        self._identity: dict | None = None  # built on first use: it may look up the model's revision
        self._backend = backend
        self._backend_lock = threading.Lock()
        self._cache_path = self.config.cache_path or str(cache_dir() / "judge_cache.sqlite")
        self._cache: VerdictCache | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="medix-judge", daemon=True)
        self._thread.start()

    @property
    def backend(self) -> JudgeBackend:
        with self._backend_lock:  # loaded on first use (building a Judge never loads a model), once
            if self._backend is None:
                self._backend = make_backend(self.config)
        return self._backend

    @property
    def method(self) -> str:
        return self._record.judge_method

    @property
    def identity(self) -> dict:
        """The one-turn judge's identity (`one_turn_identity`, from the templates this judge already loaded),
        built once; a copy, with the notes the backend has earned since (`_noted`)."""
        if self._identity is None:
            self._identity = judge_identity(self.config, self.method, self.prompts.sha256,
                                            TEMPLATE_VERSIONS["one-turn"])
        return self._noted(dict(self._identity))

    def conversation_identity(self, rounds: int, protocol: str = "medix") -> dict:
        return self._noted(judge_identity(self.config, self.method, self.conversation_prompts[protocol].sha256,
                                          TEMPLATE_VERSIONS[protocol], rounds))

    def _noted(self, identity: dict) -> dict:
        """`p_yes: unavailable` once the server has answered without the logprobs that were asked for."""
        if getattr(self._backend, "logprobs_available", None) is False:
            identity["p_yes"] = "unavailable"
        return identity

    def probe(self) -> None:
        """One short request before a phase (openai backend, logprobs on), so that the identity written into
        the first record already says whether the server gives P(YES). A failed probe says nothing: the
        phase's own requests report the server's error."""
        if self._record.served and self.config.logprobs:
            self.submit(self.backend.probe()).result()

    def render(self, request: JudgeRequest) -> str:
        return self.render_all([request])[0]

    def render_all(self, requests: list[JudgeRequest]) -> list[str]:
        """The one-turn prompts of `requests`; a served judge takes any length, so only an in-process one is
        asked whether each prompt fits."""
        return self.prompts.render_all(requests, self._fit_check)

    @property
    def _fit_check(self) -> Callable[[str], bool] | None:
        """`fits` where a prompt can be too long (an in-process judge); None for a served one (`fits` is True)."""
        return None if self._record.served else self.fits

    def fits(self, prompt: str) -> bool:
        """Whether `prompt` fits the judge's context. Only the local backend has a limit (a server takes the
        whole prompt, as the official code sends it); a prompt of fewer bytes than the smallest limit fits
        without loading the model (a token spans at least one byte)."""
        if self._record.served:
            return True
        if len(prompt.encode("utf-8")) + LOCAL_RESERVE_TOKENS <= (self.config.max_input_tokens or MIN_CONTEXT):
            return True
        return self.backend.fits(prompt)

    def submit(self, coro) -> "concurrent.futures.Future":
        """Run a coroutine on the judge's loop (used to overlap judging with other work)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # --- one-turn ---------------------------------------------------------------------------------------
    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        """Blocking: one Verdict per request, in order."""
        return self.submit(self._judge(requests)).result()

    async def ajudge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        """Awaitable from any event loop; the work runs on the judge's own loop (directly when awaited there,
        e.g. from a coroutine given to `submit`: one hand-off per call, not two)."""
        if asyncio.get_running_loop() is self._loop:
            return await self._judge(requests)
        return await asyncio.wrap_future(self.submit(self._judge(requests)))

    async def _judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        if not requests:
            return []
        identity = self.identity
        prompts = self.render_all(requests)
        keys = cache_keys(identity, prompts)
        unique = list(dict.fromkeys(keys))  # same prompt twice (common in a GRPO group) → judged once
        by_key: dict[str, Verdict] = {}
        if self.config.cache:
            if self._cache is None:
                self._cache = VerdictCache(self._cache_path)
            for key, (score, raw, p_yes) in self._cache.get_many(unique).items():
                by_key[key] = Verdict(score, raw=raw or None, cached=True, p_yes=p_yes)  # "" = wrote no text
        todo = [k for k in unique if k not in by_key]
        if todo:
            prompt_of = dict(zip(keys, prompts))
            fresh = await self.backend.verdicts([prompt_of[k] for k in todo])
            by_key.update(zip(todo, fresh))
            if self.config.cache:
                self._cache.put_many([(k, v.score, v.raw or "", v.p_yes) for k, v in zip(todo, fresh) if v.ok])
        failed = [by_key[k] for k in todo if not by_key[k].ok]
        if failed:
            log.warning("judge failed on %d of %d requests (first: %s)", len(failed), len(todo), failed[0].error)
        return [self.decide(by_key[k]) for k in keys]

    def decide(self, verdict: Verdict) -> Verdict:
        """Where the backend gave P(YES): YES iff it exceeds `threshold`, or the probability itself (`soft`)."""
        if verdict.ok and verdict.p_yes is not None:
            p = verdict.p_yes
            score = p if self.config.soft else float(p > self.config.threshold)
            return dataclasses.replace(verdict, score=score)
        return verdict

    # --- conversation -----------------------------------------------------------------------------------
    def converse(self, requests: list[JudgeRequest], rounds: int,
                 on_verdict: Callable[[int, Verdict], None] | None = None, protocol: str = "medix") -> list[Verdict]:
        """Blocking: every request judged in a `rounds`-round conversation with the prompts of `protocol`
        ("medix" or "paper"); `on_verdict(index, verdict)` is called (on the judge's thread, while this
        call waits) as each one finishes."""
        conversations = [self.conversation_prompts[protocol].conversation(r, self._fit_check) for r in requests]

        async def collect() -> list[Verdict]:
            out: list[Verdict | None] = [None] * len(requests)
            async for index, verdict in self.backend.converse(conversations, rounds):
                out[index] = verdict
                if on_verdict is not None:
                    on_verdict(index, verdict)
            return out

        return self.submit(collect()).result() if requests else []

    # --- lifecycle --------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._backend is not None:
            self.submit(self._backend.aclose()).result()
        if self._cache is not None:
            self._cache.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> "Judge":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
