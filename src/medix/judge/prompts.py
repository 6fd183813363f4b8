"""The judge's prompts: the packaged Jinja templates (`judge/templates/`), which set each mode and protocol
uses, their versions, and `Prompts` (load, check, hash, render). A question too long for the judge's context is
cut in its middle (`cut_middle`), marked.

one-turn (reward):              binary.jinja; paper configs paper_reward.jinja (reply: YES / NO)
conversation, protocol medix:   eval_binary.jinja / eval_rubric.jinja, then eval_reevaluate.jinja
conversation, protocol paper:   paper_binary.jinja / paper_rubric.jinja, then paper_reevaluate.jinja
                                (reply: {"score": n})
`JudgeConfig.template` replaces the binary template of every mode, `rubric_template` the rubric one.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Callable

import jinja2
import jinja2.meta

from medix.errors import MedixError
from medix.judge.types import Conversation, JudgeRequest, Kind

TEMPLATE_VERSIONS = {"one-turn": "binary-v1", "medix": "conversation-v1", "paper": "paper-v1"}


# The prompt templates.
TEMPLATE_DIR = Path(__file__).parent / "templates"  # the packaged .jinja files
ONE_TURN = {"binary": "binary.jinja"}
CONVERSATION_TEMPLATES = {"binary": "eval_binary.jinja", "rubric": "eval_rubric.jinja",
                          "followup": "eval_reevaluate.jinja"}
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
            low, high = ((mid, high) if fits(self._render(request, cut_middle(request.question, mid)))
                         else (low, mid - 1))
        return self._render(request, cut_middle(request.question, low))

    def render_all(self, requests: list[JudgeRequest], fits: Callable[[str], bool] | None = None) -> list[str]:
        """`render` of each request (one call for a batch)."""
        return [self.render(r, fits) for r in requests]

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
