"""The two evaluation protocols as objects: the settings that differ between them, and what the judge sees.

    from medix.eval.protocol import get_protocol
    paper = get_protocol("paper")
    paper.max_new_tokens, paper.image_format, paper.failures_count_zero      # 2048, 'JPEG', True
    paper.judge_question("Which nerve?")                                    # 'Which nerve?' (medix: cut to 1,200)

`paper` reproduces the published MediX-R1 evaluation item by item (docs/fidelity.md): bare questions with a
`Choices:` block, the option text as reference, full-size JPEG images, the judge shown the text after the
last think block and the whole question, JSON-score judge prompts, failed items counted as 0. `medix` is
medix's own: the format prompt, `Options:` with `B. text` references, downscaled PNG images, the
`<answer>` block judged against a question cut to 1,200 characters, YES/NO judge prompts, failures excluded.
A config names a protocol by its name (`protocol: paper`); `get_protocol` turns the name into the object.
How each protocol lays a question out is the task shape's, beside its builder (`medix/eval/shapes/`, keyed
by protocol name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from medix.data.images import MAX_IMAGE_SIDE
from medix.registry import Registry
from medix.data.response import LEADING_TAG
from medix.judge.parse import THINK_BLOCK, after_last_think

MAX_QUESTION_CHARS = 1200  # long PubMedQA contexts: the judge needs the question, not the whole abstract


def paper_candidate(raw: str) -> str:
    """What the paper's judge sees of a response: the official rule (`judge.parse.after_last_think`); a
    `</Think>` or `</ think>` is no tag there, so the judge sees the whole response."""
    return after_last_think(raw)


def shorten(text: str, limit: int = MAX_QUESTION_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} … {text[-half:]}"


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol. Fields are the settings; methods are what the judge sees. The name goes
    into run identities and scores.json, and picks each task shape's question layout."""

    name: str
    max_new_tokens: int  # generation budget when the config leaves it unset
    format_prompt: bool  # wrap each question in the MediX-R1 format instruction by default
    image_format: str  # how images travel to a policy server as data URLs
    image_max_side: int | None  # downscale images to this side before sending; None = full size
    judge_prompts: str  # the judge's conversation prompt set (medix.judge.core.Judge.converse)
    failures_count_zero: bool  # True: a failed item is 0 in the denominator; False: excluded
    official_prompts: bool  # a task's `prompt` (from the official tasks file) replaces the built question
    reference_as_written: bool  # a row's answer-text column is the reference (not rebuilt from the options)
    judge_defaults: dict  # JudgeConfig values an eval judge starts from (a `judge:` section overrides them)

    def __str__(self) -> str:
        return self.name

    @property
    def failures_counted_as(self) -> str:
        return "0 (in the denominator)" if self.failures_count_zero else "excluded"

    # --- what the judge sees (medix.eval.judging) -------------------------------------------------------
    def candidate(self, raw: str | None, answer: str | None) -> str:
        raise NotImplementedError

    def judge_question(self, question: str) -> str:
        raise NotImplementedError


class PaperProtocol(Protocol):
    def candidate(self, raw: str | None, answer: str | None) -> str:
        return paper_candidate(raw or "")

    def judge_question(self, question: str) -> str:
        return question


class MedixProtocol(Protocol):
    def candidate(self, raw: str | None, answer: str | None) -> str:
        """The final answer only; without an <answer> block, the raw text minus think blocks and the
        leading modality tag."""
        if answer is not None:
            return answer.strip()
        text = THINK_BLOCK.sub(" ", raw or "")
        text = re.sub(r"<\s*/?\s*answer\s*>", " ", LEADING_TAG.sub("", text), flags=re.IGNORECASE)
        return " ".join(text.split())

    def judge_question(self, question: str) -> str:
        return shorten(question)


# The paper's judge settings, kept by both protocols: 512 new tokens (a verbose or thinking judge is not cut off),
# thinking off, the official evaluation's 180 s per request (a 14B judge writing 512 tokens under load needs more
# than 60 s), and a judge server next to the policy's (which defaults to port 8000).
EVAL_JUDGE = {"max_tokens": 512, "thinking": "off", "timeout_s": 180.0, "base_urls": ["http://127.0.0.1:8001/v1"]}
# The published evaluation: bare question, 2048 new tokens, JPEG at full size as the official client sends.
PAPER_PROTOCOL = PaperProtocol("paper", max_new_tokens=2048, format_prompt=False, image_format="JPEG",
                      image_max_side=None, judge_prompts="paper", failures_count_zero=True, official_prompts=True,
                      reference_as_written=True, judge_defaults=EVAL_JUDGE)
# medix's own: the training format prompt around each question, PNG downscaled to MAX_IMAGE_SIDE.
MEDIX_PROTOCOL = MedixProtocol("medix", max_new_tokens=1024, format_prompt=True, image_format="PNG",
                      image_max_side=MAX_IMAGE_SIDE, judge_prompts="medix", failures_count_zero=False,
                      official_prompts=False, reference_as_written=False, judge_defaults=EVAL_JUDGE)
PROTOCOLS: Registry[Protocol] = Registry("protocol", add="a Protocol registered in medix/eval/protocol.py",
                                         entries=[(p.name, p) for p in (PAPER_PROTOCOL, MEDIX_PROTOCOL)])


def get_protocol(value: "Protocol | str") -> Protocol:
    """The protocol object for a name (config files, flags) or the object itself."""
    if isinstance(value, Protocol):
        return value
    return PROTOCOLS[value]
