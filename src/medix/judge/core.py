"""`Judge`: render prompts, deduplicate, consult the cache, call the backend concurrently.

The judge owns a private event loop on a daemon thread, so the same object can be used from plain
code (`judge.judge(...)`), from async code on any loop (`await judge.ajudge(...)`, e.g. TRL's async
reward loop) and across many calls, without HTTP clients ever changing loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import threading
from functools import lru_cache
from pathlib import Path

import jinja2

from medix.config import JudgeConfig
from medix.errors import MedixError
from medix.judge.cache import VerdictCache, cache_key
from medix.judge.types import JudgeRequest, Verdict
from medix.models import cache_dir

log = logging.getLogger(__name__)
TEMPLATE_DIR = Path(__file__).parent / "templates"
PROTOCOL = "binary-v1"


@lru_cache(maxsize=8)
def load_template(path: str) -> tuple[jinja2.Template, str]:
    """(template, sha256 of its source)."""
    file = Path(path)
    if not file.is_file():
        raise MedixError(f"judge template not found: {file}")
    source = file.read_text(encoding="utf-8")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["quote"] = lambda s: json.dumps(str(s), ensure_ascii=False)
    try:
        return env.from_string(source), hashlib.sha256(source.encode("utf-8")).hexdigest()
    except jinja2.TemplateSyntaxError as err:
        raise MedixError(f"judge template {file}, line {err.lineno}: {err.message}") from None


def make_backend(config: JudgeConfig):
    if config.backend == "openai":
        from medix.judge.openai_backend import OpenAIBackend

        return OpenAIBackend(config)
    from medix.judge.local_backend import LocalBackend

    return LocalBackend(config)


class Judge:
    def __init__(self, config: JudgeConfig | None = None, backend=None):
        self.config = config or JudgeConfig()
        self.template, self.template_sha = load_template(self.config.template or str(TEMPLATE_DIR / "binary.jinja"))
        self.backend = backend or make_backend(self.config)
        self._cache_path = self.config.cache_path or str(cache_dir() / "judge_cache.sqlite")
        self._cache: VerdictCache | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="medix-judge", daemon=True)
        self._thread.start()

    @property
    def identity(self) -> dict:
        """Everything that can change a verdict; stored in every record and in the cache key."""
        cfg = self.config
        return {
            "backend": cfg.backend,
            "model": cfg.model,
            "method": self.backend.method,
            "template_sha256": self.template_sha,
            "protocol": PROTOCOL,
            "temperature": cfg.temperature if cfg.backend == "openai" else None,
            "max_tokens": cfg.max_tokens if cfg.backend == "openai" else None,
        }

    def render(self, request: JudgeRequest) -> str:
        return self.template.render(
            question=request.question, reference=request.reference, candidate=request.candidate
        ).strip()

    def submit(self, coro) -> "concurrent.futures.Future":
        """Run a coroutine on the judge's loop (used to overlap judging with other work)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        """Blocking: one Verdict per request, in order."""
        return asyncio.run_coroutine_threadsafe(self._judge(requests), self._loop).result()

    async def ajudge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        """Awaitable from any event loop; the work runs on the judge's own loop."""
        future = asyncio.run_coroutine_threadsafe(self._judge(requests), self._loop)
        return await asyncio.wrap_future(future)

    async def _judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        if not requests:
            return []
        identity = self.identity
        prompts = [self.render(r) for r in requests]
        keys = [cache_key(identity, p) for p in prompts]
        unique = list(dict.fromkeys(keys))  # same prompt twice (common in a GRPO group) → judged once
        by_key: dict[str, Verdict] = {}
        if self.config.cache:
            if self._cache is None:
                self._cache = VerdictCache(self._cache_path)
            for key, (score, raw) in self._cache.get_many(unique).items():
                by_key[key] = Verdict(score, raw=raw, cached=True)
        todo = [k for k in unique if k not in by_key]
        if todo:
            prompt_of = dict(zip(keys, prompts))
            fresh = await self.backend.verdicts([prompt_of[k] for k in todo])
            by_key.update(zip(todo, fresh))
            if self.config.cache:
                self._cache.put_many([(k, v.score, v.raw or "") for k, v in zip(todo, fresh) if v.ok])
        failed = sum(1 for k in todo if not by_key[k].ok)
        if failed:
            log.warning("judge failed on %d of %d requests (first: %s)", failed, len(todo),
                        next(by_key[k].error for k in todo if not by_key[k].ok))
        return [by_key[k] for k in keys]

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.backend.aclose(), self._loop).result()
        if self._cache is not None:
            self._cache.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> "Judge":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
