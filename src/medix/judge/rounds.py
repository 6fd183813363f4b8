"""The evaluation judge: the paper's protocol of several rounds in ONE conversation.

Round 1 asks for a verdict (binary YES/NO for QA and MCQ, a 0-5 rubric score for reports); each later
round appends the judge's answer as an assistant turn and asks it to re-evaluate. Binary = majority of the
rounds, rubric = mean of the rounds.

    judge = ConversationJudge(JudgeConfig(backend="openai", base_urls=[url], model="Qwen/Qwen3-14B"))
    verdicts = judge.judge([RoundRequest(candidate="B", reference="B. Aspirin", kind="binary")])

Backends (chosen by `JudgeConfig.backend`):
  openai  any OpenAI-compatible server; every sample is its own conversation, all in flight together up to
          `max_concurrency`; each round call is retried (HTTP error, timeout, unparsable verdict) up to
          `max_retries`; a round that still fails fails the sample visibly (score None, error set).
  local   the in-process model of `medix.judge.local_backend`: no generation. Each round is one batched
          forward pass over all samples; the verdict is the argmax of the next-token logits over YES/NO
          (binary) or the digits 0-5 (rubric), and that token is appended as the assistant's reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
from dataclasses import asdict, dataclass, field
from typing import AsyncIterator, Literal

from medix.config import JudgeConfig
from medix.judge.core import TEMPLATE_DIR, load_template
from medix.judge.parse import parse_verdict

Kind = Literal["binary", "rubric"]
PROTOCOL = "conversation-v1"
TEMPLATES = {"binary": "eval_binary.jinja", "rubric": "eval_rubric.jinja", "followup": "eval_reevaluate.jinja"}
_SCORE_KEY = re.compile(r'"?score"?\s*[:=]\s*"?([0-5](?:\.\d+)?)', re.IGNORECASE)
_LONE_DIGIT = re.compile(r"(?<![\d.])([0-5])(?![\d.])")


@dataclass(frozen=True)
class RoundRequest:
    candidate: str  # the model's final answer, reasoning already stripped
    reference: str
    question: str = ""
    kind: Kind = "binary"


@dataclass
class RoundVerdict:
    score: float | None  # binary: 1.0 / 0.0 (majority); rubric: mean of the rounds in [0, 5]; None = failed
    rounds: list[float] = field(default_factory=list)  # the parsed verdict of each finished round
    raws: list[str] = field(default_factory=list)  # the judge's text per round ("YES" / '{"score": 4}' / logits)
    error: str | None = None
    parse_failures: int = 0  # judge replies that held no verdict (each one was retried)
    attempts: int = 0  # HTTP calls made, retries included

    def to_dict(self) -> dict:
        return asdict(self)


def parse_rubric(text: str | None) -> float | None:
    """A 0-5 score from `{"score": 4}`, `Score: 4/5`, `**3**`; None when there is none."""
    if not text:
        return None
    stripped = text.strip()
    start, end = stripped.find("{"), stripped.rfind("}")
    if start != -1 and end > start:
        try:
            data = json.loads(stripped[start:end + 1])
            value = data.get("score") if isinstance(data, dict) else None
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                number = float(value)
                return number if 0 <= number <= 5 else None
        except (json.JSONDecodeError, ValueError):
            pass
    found = _SCORE_KEY.search(stripped) or _LONE_DIGIT.search(stripped[:200])
    return float(found.group(1)) if found else None


def parse_round(kind: Kind, text: str | None) -> float | None:
    return parse_rubric(text) if kind == "rubric" else parse_verdict(text)


def combine(kind: Kind, rounds: list[float]) -> float:
    """Binary: majority (ties → NO, since an unsure judge must not award the point); rubric: mean."""
    if kind == "rubric":
        return sum(rounds) / len(rounds)
    return 1.0 if sum(rounds) * 2 > len(rounds) else 0.0


class ConversationJudge:
    """Multi-round judging with a recorded identity; see the module docstring."""

    def __init__(self, config: JudgeConfig | None = None, rounds: int = 3):
        self.config = config or JudgeConfig()
        self.rounds = rounds
        self.templates = {k: load_template(str(TEMPLATE_DIR / v)) for k, v in TEMPLATES.items()}
        if self.config.template:  # a user's binary template replaces ours; the rubric stays
            self.templates["binary"] = load_template(self.config.template)
        self._local = None
        self._clients = None

    @property
    def identity(self) -> dict:
        """Everything that can change a verdict: stored in every judgment and in the resume key."""
        cfg = self.config
        shas = "".join(self.templates[k][1] for k in sorted(self.templates))
        return {
            "backend": cfg.backend, "model": cfg.model,
            "method": "chat" if cfg.backend == "openai" else "logits",
            "template_sha256": hashlib.sha256(shas.encode()).hexdigest(),
            "protocol": PROTOCOL, "rounds": self.rounds,
            "temperature": cfg.temperature if cfg.backend == "openai" else None,
            "max_tokens": cfg.max_tokens if cfg.backend == "openai" else None,
        }

    @property
    def key(self) -> str:
        """Short hash of the identity: names the judgment files, so a new judge never reuses verdicts."""
        blob = json.dumps(self.identity, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def first_prompt(self, request: RoundRequest) -> str:
        template = self.templates[request.kind][0]
        return template.render(question=request.question, reference=request.reference,
                               candidate=request.candidate).strip()

    def followup(self, kind: Kind) -> str:
        return self.templates["followup"][0].render(kind=kind).strip()

    def judge(self, requests: list[RoundRequest]) -> list[RoundVerdict]:
        """Blocking: one verdict per request, in order."""
        async def collect():
            out: list[RoundVerdict | None] = [None] * len(requests)
            async for index, verdict in self.stream(requests):
                out[index] = verdict
            return out

        return asyncio.run(collect())

    async def stream(self, requests: list[RoundRequest]) -> AsyncIterator[tuple[int, RoundVerdict]]:
        """(index, verdict) as each sample finishes, so callers can write results as they come."""
        if self.config.backend == "local":
            from medix.judge.rounds_local import local_verdicts

            if self._local is None:
                from medix.judge.local_backend import LocalBackend

                self._local = LocalBackend(self.config)
            size = max(self.config.batch_size * 4, 1)
            for start in range(0, len(requests), size):
                chunk = requests[start:start + size]
                verdicts = await asyncio.to_thread(local_verdicts, self, self._local, chunk)
                for offset, verdict in enumerate(verdicts):
                    yield start + offset, verdict
            return
        import openai

        api_key = os.environ.get(self.config.api_key_env) or "EMPTY"
        clients = [openai.AsyncOpenAI(base_url=u, api_key=api_key, max_retries=0, timeout=self.config.timeout_s)
                   for u in self.config.base_urls]
        slots = asyncio.Semaphore(self.config.max_concurrency)

        async def one(i: int):
            async with slots:  # one slot per conversation: its rounds are sequential anyway
                return i, await self._conversation(clients[i % len(clients)], requests[i])

        try:
            for next_done in asyncio.as_completed([one(i) for i in range(len(requests))]):
                yield await next_done
        finally:
            for client in clients:
                await client.close()

    async def _conversation(self, client, request: RoundRequest) -> RoundVerdict:
        messages = [{"role": "user", "content": self.first_prompt(request)}]
        verdict = RoundVerdict(score=None)
        for round_no in range(self.rounds):
            if round_no:
                messages.append({"role": "user", "content": self.followup(request.kind)})
            text, value, error = await self._ask(client, messages, request.kind, verdict)
            if value is None:
                verdict.error = f"round {round_no + 1}: {error}"
                return verdict
            verdict.rounds.append(value)
            verdict.raws.append(text)
            messages.append({"role": "assistant", "content": text})
        verdict.score = combine(request.kind, verdict.rounds)
        return verdict

    async def _ask(self, client, messages, kind: Kind, verdict: RoundVerdict):
        """One round with retries → (text, parsed value or None, last error)."""
        import openai

        cfg, error = self.config, "no attempt made"
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                delay = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
            verdict.attempts += 1
            try:
                response = await asyncio.wait_for(client.chat.completions.create(
                    model=cfg.model, messages=messages, temperature=cfg.temperature, max_tokens=cfg.max_tokens),
                    timeout=cfg.timeout_s)
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError,
                    openai.BadRequestError) as err:  # retrying cannot fix these
                return None, None, f"{err.__class__.__name__}: {str(err)[:200]}"
            except (openai.APIError, asyncio.TimeoutError, ValueError) as err:
                error = f"{err.__class__.__name__}: {(str(err).splitlines() or [''])[0][:200] or 'timed out'}"
                continue
            try:
                text = response.choices[0].message.content or ""
            except (AttributeError, IndexError, TypeError):
                text = ""
            value = parse_round(kind, text)
            if value is not None:
                return text, value, None
            verdict.parse_failures += 1
            error = f"unparsable verdict: {text!r:.120}"
        return None, None, error
