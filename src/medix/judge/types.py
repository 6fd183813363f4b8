"""What goes into the judge and what comes out, for both modes (one-turn verdicts, multi-round
conversations) and both backends; `JudgeBackend` is the interface a backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Literal, Protocol

Kind = Literal["binary", "rubric"]
MIN_CONTEXT = 2048  # no local judge has a shorter context (SmolLM2-135M: 8,192)
LOCAL_RESERVE_TOKENS = 256  # chat template, follow-up turns and short replies of a judging conversation
# Facts about the server noted in a judge identity, not settings: they change no key (cache, judgments
# folder), so a run's verdicts stay where they are whether or not the server sent logprobs.
IDENTITY_NOTES = ("p_yes",)


@dataclass(frozen=True)
class JudgeRequest:
    candidate: str  # the model's final answer (reasoning already stripped)
    reference: str  # the reference answer (modality tag already stripped)
    question: str = ""  # optional context for the judge
    kind: Kind = "binary"  # binary YES/NO (QA, MCQ) or a 0-5 rubric (reports; conversations only)


@dataclass
class Verdict:
    """One judged sample. binary: 1.0 YES / 0.0 NO (the majority over rounds in a conversation);
    rubric: the mean of the rounds in [0, 5]; None when the judge failed (`error` says why)."""

    score: float | None
    error: str | None = None  # why the judge failed (after all retries); None on success
    raw: str | None = None  # the judge's last text; None for one-turn logit verdicts (they write none: see p_yes)
    cached: bool = False
    attempts: int = 0  # backend calls made, retries included
    rounds: list[float] = field(default_factory=list)  # conversations: the parsed verdict of each finished round
    raws: list[str] = field(default_factory=list)  # conversations: the judge's text per round
    parse_failures: int = 0  # replies that held no verdict (each one was retried)
    p_yes: float | None = None  # one-turn: P(YES) when the backend gives one (logits, or a server's logprobs)
    circuit_open: bool = False  # failed without asking: the servers had stopped answering (ChatResult.circuit_open)

    @property
    def ok(self) -> bool:
        return self.score is not None


@dataclass(frozen=True)
class Conversation:
    """A multi-round judging conversation: `first` opens it, `followup` is asked after every reply."""

    first: str
    followup: str
    kind: Kind = "binary"
    readout: Literal["yesno", "json_score"] = "yesno"  # the reply the prompts ask for


class JudgeBackend(Protocol):
    """What a judge backend implements; how it reads a verdict ("chat" / "logits") is its entry in
    medix.backends."""

    async def verdicts(self, prompts: list[str]) -> list[Verdict]:
        """One-turn: one verdict per rendered prompt, in order."""

    def converse(self, conversations: list[Conversation], rounds: int) -> AsyncIterator[tuple[int, Verdict]]:
        """Multi-round: (index, verdict) as each conversation finishes."""

    async def aclose(self) -> None:
        """Release clients / models."""
