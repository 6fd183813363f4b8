"""`Judge`: one judge, two modes, two backends.

    judge = Judge(JudgeConfig(backend="local"))
    judge.judge([JudgeRequest(candidate="pneumonia", reference="lobar pneumonia")])   # one-turn (reward)
    judge.converse([JudgeRequest(..., kind="rubric")], rounds=3)                     # conversation (eval)

one-turn      render (binary.jinja), deduplicate, consult the SQLite cache, ask the backend for the rest.
conversation  the paper's evaluation protocol: a first question, then a re-evaluation request after each
              reply, all in ONE conversation; binary = majority of the rounds, rubric = their mean.
              Verdicts stream out as each conversation finishes (`on_verdict`), for crash-safe records.

Prompts are Jinja templates (packaged in `judge/templates/`), loaded, hashed and rendered here:
one-turn (reward):              binary.jinja; paper configs paper_reward.jinja (reply: YES / NO)
conversation, protocol medix:   eval_binary.jinja / eval_rubric.jinja, then eval_reevaluate.jinja
conversation, protocol paper:   paper_binary.jinja / paper_rubric.jinja, then paper_reevaluate.jinja  (reply: {"score": n})
`JudgeConfig.template` replaces the binary template of every mode, `rubric_template` the rubric one.

The judge owns a private event loop on a daemon thread, so the same object can be used from plain code
(`judge.judge(...)`), from async code on any loop (`await judge.ajudge(...)`, e.g. TRL's async reward
loop) and across many calls, without HTTP clients ever changing loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable

import jinja2
import jinja2.meta

from medix.backends import get_backend
from medix.judge.config import JudgeConfig
from medix.errors import MedixError
from medix.files import cache_dir
from medix.judge.cache import VerdictCache, cache_keys
from medix.judge.types import (IDENTITY_NOTES, LOCAL_RESERVE_TOKENS, MIN_CONTEXT, Conversation, JudgeBackend,
                               JudgeRequest, Kind, Verdict)
from medix.safe_text import display_url

log = logging.getLogger(__name__)
TEMPLATE_VERSIONS = {"one-turn": "binary-v1", "medix": "conversation-v1", "paper": "paper-v1"}


# The prompt templates.
TEMPLATE_DIR = Path(__file__).parent / "templates"  # the packaged .jinja files
ONE_TURN = {"binary": "binary.jinja"}
CONVERSATION_TEMPLATES = {"binary": "eval_binary.jinja", "rubric": "eval_rubric.jinja", "followup": "eval_reevaluate.jinja"}
# The published evaluation's contract (JSON {"score": n}, re-evaluation request), in medix's own wording.
PAPER_TEMPLATES = {"binary": "paper_binary.jinja", "rubric": "paper_rubric.jinja", "followup": "paper_reevaluate.jinja"}
REQUIRED = ("candidate", "reference")  # a judging template that never shows one of these cannot judge


def _env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["quote"] = lambda s: json.dumps(str(s), ensure_ascii=False)
    return env


def check_variables(path: str) -> None:
    """Refuse a judging template that does not use `candidate` and `reference` (the judge would never
    see the answer, and every verdict would be a guess)."""
    file = Path(path) if Path(path).is_file() else TEMPLATE_DIR / path
    source = file.read_text(encoding="utf-8")
    used = jinja2.meta.find_undeclared_variables(_env().parse(source))
    missing = [name for name in REQUIRED if name not in used]
    if missing:
        raise MedixError(f"judge template {path} never uses {' or '.join('{{ ' + m + ' }}' for m in missing)}; "
                         "a judging template must show the judge the candidate and the reference "
                         "(variables: question, reference, candidate)")


@lru_cache(maxsize=16)
def load_template(path: str) -> tuple[jinja2.Template, str]:
    """(template, sha256 of its source). A bare name of a packaged template ("paper_reward.jinja") works too."""
    file = Path(path)
    if not file.is_file() and (TEMPLATE_DIR / path).is_file():
        file = TEMPLATE_DIR / path
    if not file.is_file():
        raise MedixError(f"judge template not found: {file}")
    source = file.read_text(encoding="utf-8")
    try:
        return _env().from_string(source), hashlib.sha256(source.encode("utf-8")).hexdigest()
    except jinja2.TemplateSyntaxError as err:
        raise MedixError(f"judge template {file}, line {err.lineno}: {err.message}") from None


class Prompts:
    """The templates of one judging mode; `sha256` covers all of them (it enters the judge identity)."""

    def __init__(self, files: dict[str, str], binary_override: str | None = None,
                 rubric_override: str | None = None, readout: str = "yesno"):
        paths = {k: str(TEMPLATE_DIR / v) for k, v in files.items()}
        if binary_override:
            paths["binary"] = binary_override
        if rubric_override and "rubric" in paths:
            paths["rubric"] = rubric_override
        self.templates = {k: load_template(v) for k, v in paths.items()}
        for kind in ("binary", "rubric"):
            if kind in paths:
                check_variables(paths[kind])
        self.readout = readout  # what the judge is asked to reply: "yesno" or "json_score"
        if len(self.templates) == 1:  # one-turn: the template's own hash (kept stable for existing caches)
            self.sha256 = next(iter(self.templates.values()))[1]
        else:
            joined = "".join(self.templates[k][1] for k in sorted(self.templates))
            self.sha256 = hashlib.sha256(joined.encode()).hexdigest()

    def render(self, request: JudgeRequest, fits: Callable[[str], bool] | None = None) -> str:
        """The prompt; where `fits` says it is past the judge's context, the question (never the
        instructions, the reference or the candidate) is shortened in the middle, marked."""
        text = self._render(request, request.question)
        if fits is None or not request.question or fits(text):
            return text
        low, high = 0, len(request.question) - 1  # the longest middle-cut question that fits
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(self._render(request, cut_middle(request.question, mid))) else (low, mid - 1)
        return self._render(request, cut_middle(request.question, low))

    def _render(self, request: JudgeRequest, question: str) -> str:
        template = self.templates[request.kind][0]
        return template.render(question=question, reference=request.reference, candidate=request.candidate).strip()

    def followup(self, kind: Kind) -> str:
        return self.templates["followup"][0].render(kind=kind).strip()

    def conversation(self, request: JudgeRequest, fits: Callable[[str], bool] | None = None) -> Conversation:
        return Conversation(self.render(request, fits), self.followup(request.kind), request.kind, self.readout)


CUT_MARK = " [… question shortened to fit the judge's context …] "


def cut_middle(text: str, keep: int) -> str:
    """`text` with its middle replaced by CUT_MARK, keeping `keep` characters (half from each end)."""
    head = keep - keep // 2
    return f"{text[:head]}{CUT_MARK}{text[len(text) - keep // 2:]}" if keep < len(text) else text


# The judge.


def judge_identity(config: JudgeConfig, method: str, template_sha256: str, protocol: str,
                   rounds: int | None = None) -> dict:
    """Everything that can change a verdict; stored in every record and in the cache / resume key. A served
    judge's identity names its servers (without credentials): verdicts of two servers never mix."""
    backend = get_backend(config.backend)
    served = backend.served  # sampling settings and servers matter only to a served judge
    identity = {
        "backend": config.backend, "model": config.model, "method": method,
        "template_sha256": template_sha256, "protocol": protocol,
        "temperature": config.temperature if served else None,
        "max_tokens": config.max_tokens if served else None,
    }
    if served:  # where it runs: one model name on two servers may be two judges
        identity["endpoints"] = sorted(display_url(u).rstrip("/") for u in config.base_urls)
    if rounds is not None:
        identity["rounds"] = rounds
    if backend.in_process:  # float32 (absent, as in older runs) and bfloat16 verdicts never mix
        from medix.models import runtime_dtype

        dtype = runtime_dtype(config.device, config.dtype)
        if dtype != "float32":
            identity["dtype"] = dtype
        from medix.models import model_revision

        revision = model_revision(config.model, "judge model")
        if revision:  # a hub id: the commit its weights were read from
            identity["model_revision"] = revision
    # Absent when left at their defaults, so identities (and judgment folders) of older runs still match.
    for name, default in (("thinking", "auto"), ("threshold", 0.5), ("soft", False)):
        if getattr(config, name) != default:
            identity[name] = getattr(config, name)
    return identity


def identity_key(identity: dict) -> str:
    """Short hash of an identity: names judgment folders, so a new judge never reuses old verdicts."""
    settings = {k: v for k, v in identity.items() if k not in IDENTITY_NOTES}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def backend_method(config: JudgeConfig) -> str:
    """How the backend reads a verdict: "chat" (parsed from generated text) or "logits" (next-token logits)."""
    return get_backend(config.backend).judge_method


def one_turn_identity(config: JudgeConfig) -> dict:
    """The identity of the one-turn judge `config` describes, without building it (no model is loaded)."""
    return judge_identity(config, backend_method(config), Prompts(ONE_TURN, config.template).sha256,
                          TEMPLATE_VERSIONS["one-turn"])


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
        return self.prompts.render(request, self.fits)

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
        prompts = [self.render(r) for r in requests]
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
        conversations = [self.conversation_prompts[protocol].conversation(r, self.fits) for r in requests]

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
