"""Phase 2, judge: each generation record → a JudgmentRecord from the multi-round conversational judge.

    medix eval run --model M --phases judge --judge-backend openai --judge-url http://127.0.0.1:8001/v1

What the judge sees (candidate and question) is the protocol's (`medix.eval.protocol`): paper, the
response after its last `</think>` / `</thinking>` and the full question; medix, the final answer only and
the question cut to 1,200 characters. An empty answer scores 0 without a judge call. A failed generation
gets a failed judgment. Judgments live in `judgments/<judge key>/`, the key hashing the judge identity,
so a different judge never reuses these verdicts; records are appended as each conversation finishes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

from medix.errors import MedixError
from medix.eval.protocol import PAPER_PROTOCOL, Protocol, get_protocol
from medix.eval.registry import TaskSpec
from medix.eval.records import GenerationRecord, JsonlStore, JudgmentRecord
from medix.judge import Judge, JudgeRequest, Verdict, identity_key

log = logging.getLogger(__name__)


@dataclass
class EvalJudge:
    """The judge of an eval run: the conversation mode with a fixed round count, and its identity."""

    judge: Judge
    rounds: int
    protocol: Protocol = PAPER_PROTOCOL

    def __post_init__(self) -> None:
        self.protocol = get_protocol(self.protocol)  # a name is accepted too

    @property
    def identity(self) -> dict:
        return self.judge.conversation_identity(self.rounds, self.protocol.judge_prompts)

    @cached_property
    def key(self) -> str:
        """Hashes the identity's settings, not its notes (`p_yes: unavailable`): fixed for the run."""
        return identity_key(self.identity)


def _record(gen: GenerationRecord, spec: TaskSpec, identity: dict, candidate: str, verdict: Verdict | None,
            status: str, note: str | None = None, error: str | None = None) -> JudgmentRecord:
    score = verdict.score if verdict else (0.0 if status == "empty_answer" else None)
    normalized = None if score is None else (score / 5.0 if spec.judge == "rubric" else score)
    return JudgmentRecord(
        id=gen.id, task=gen.task, prompt_sha256=gen.prompt_sha256, data_revision=gen.data_revision, judge=identity,
        kind=spec.judge, candidate=candidate, reference=gen.reference, score=score, normalized=normalized,
        rounds=verdict.rounds if verdict else [], raws=verdict.raws if verdict else [],
        parse_failures=verdict.parse_failures if verdict else 0,
        error=error or (verdict.error if verdict else None), note=note, status=status)


def run_judge(spec: TaskSpec, judge: EvalJudge, generations: list[GenerationRecord], store: JsonlStore,
              on_done: Callable[[int], None] = lambda n: None) -> int:
    """Judge the generations not yet in `store`; returns how many judgments failed."""
    identity = judge.identity
    current = {g.id: g.prompt_sha256 for g in generations}
    # a judgment of an older generation of the same id (regenerated since) is judged again
    store.drop(lambda r: r["id"] in current and r.get("prompt_sha256") != current[r["id"]])
    done = store.ids()
    immediate, to_judge, requests = [], [], []
    for gen in (g for g in generations if g.id not in done):
        candidate = judge.protocol.candidate(gen.raw, gen.answer)
        if gen.raw is None:
            immediate.append(_record(gen, spec, identity, "", None, "no_response", error=f"no response: {gen.error}"))
        elif not candidate:
            immediate.append(_record(gen, spec, identity, "", None, "empty_answer",
                                     note="empty answer: scored 0 without the judge"))
        else:
            to_judge.append((gen, candidate))
            requests.append(JudgeRequest(candidate=candidate, reference=gen.reference,
                                         question=judge.protocol.judge_question(gen.question), kind=spec.judge))
    store.append(immediate, sync=False)
    on_done(len(immediate))

    unanswered = []

    def write(index: int, verdict: Verdict) -> None:
        gen, candidate = to_judge[index]
        if verdict.circuit_open:
            unanswered.append(verdict.error)  # not recorded: the same command judges it once the judge is back
            return
        status = "scored" if verdict.ok else "judge_failed"
        store.append([_record(gen, spec, identity, candidate, verdict, status)], sync=False)
        on_done(1)

    verdicts = judge.judge.converse(requests, judge.rounds, on_verdict=write, protocol=judge.protocol.judge_prompts)
    store.sync()
    if unanswered:
        raise MedixError(f"{unanswered[0]}. Judgments of {spec.name} so far are saved in {store.path}; "
                         f"{len(unanswered)} were not attempted. Re-run the same command once the judge is back")
    return sum(r.status != "scored" and r.status != "empty_answer" for r in immediate) + \
        sum(not v.ok for v in verdicts)
