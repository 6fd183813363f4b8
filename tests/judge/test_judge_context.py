"""The local judge never cuts its own instructions (the official code sends every prompt whole).

Past the model's context only the question is shortened, in the middle and marked; the instructions, the
reference and the candidate stay whole, and a prompt that cannot fit even so fails visibly.
"""

import pytest

from medix.judge.config import JudgeConfig
from medix.judge import Judge, JudgeRequest
from medix.judge.prompts import CUT_MARK
from medix.judge.types import LOCAL_RESERVE_TOKENS, Verdict

QUESTION = " ".join(f"clinical-detail-{i}" for i in range(3000))  # ~15k tokens
REQUEST = JudgeRequest(candidate="Left lower lobe pneumonia", reference="Pneumonia of the left lower lobe",
                       question=f"START {QUESTION} END")


@pytest.fixture(scope="module")
def small_context_judge():
    with Judge(JudgeConfig(backend="local", max_input_tokens=1024, cache=False)) as judge:
        yield judge


def test_a_long_question_is_cut_in_the_middle_and_the_template_kept(small_context_judge):
    judge = small_context_judge
    one_turn = judge.render(REQUEST)  # the packaged one-turn prompt leaves the question out: nothing to cut
    assert one_turn == judge.prompts._render(REQUEST, REQUEST.question) and "START" not in one_turn
    for protocol in ("paper", "medix"):  # the evaluation conversation keeps it, shortened in the middle
        whole = judge.conversation_prompts[protocol].conversation(REQUEST, lambda _: True).first
        conv = judge.conversation_prompts[protocol].conversation(REQUEST, judge.fits)
        first_line, last_line = whole.splitlines()[0], whole.splitlines()[-1]
        assert conv.first.startswith(first_line) and conv.first.endswith(last_line)  # instructions whole
        assert CUT_MARK.strip() in conv.first and "START" in conv.first and "END" in conv.first
        assert '"Pneumonia of the left lower lobe"' in conv.first
        tokens = len(judge.backend.tokenizer(conv.first, add_special_tokens=False)["input_ids"])
        assert tokens + LOCAL_RESERVE_TOKENS <= 1024 and tokens + LOCAL_RESERVE_TOKENS > 800  # as much as fits


def test_a_prompt_within_the_real_context_is_sent_whole():
    with Judge(JudgeConfig(backend="local", cache=False)) as judge:  # SmolLM2-135M: 8,192 tokens
        request = JudgeRequest(candidate="x", reference="y", question=" ".join(["word"] * 3000))  # ~3k tokens
        assert judge.render(request) == judge.prompts._render(request, request.question)
        assert judge.backend.context_tokens == 8192


def test_a_reference_past_the_context_is_a_failed_verdict_not_a_cut_one(small_context_judge):
    request = JudgeRequest(candidate="x", reference=QUESTION, question="q")
    [verdict] = small_context_judge.judge([request])
    assert verdict.score is None and "past the judge's context of 1024 tokens" in verdict.error


class RecordingBackend:
    """Stands in for the model: a context of 2,000 characters; records the conversations it is given."""

    def __init__(self):
        self.conversations, self.asked = [], 0

    def fits(self, prompt: str) -> bool:
        self.asked += 1
        return len(prompt) <= 2000

    async def converse(self, conversations, rounds):
        self.conversations += conversations
        for index in range(len(conversations)):
            yield index, Verdict(1.0, rounds=[1.0])

    async def aclose(self):
        pass


@pytest.mark.parametrize("backend, cut", [("local", True), ("openai", False)])
def test_the_judges_own_conversations_are_cut_only_where_the_model_has_a_context(backend, cut):
    """Through `Judge.converse`: an in-process judge shortens the question to its context; a served one sends
    it whole (the server takes every prompt, as the official code sends it) and never asks whether it fits."""
    recording = RecordingBackend()
    config = JudgeConfig(backend=backend, model="smollm2-135m", cache=False, max_input_tokens=1024)
    with Judge(config, backend=recording) as judge:
        [verdict] = judge.converse([REQUEST], rounds=1)
    first = recording.conversations[0].first
    assert verdict.ok and ("START" in first and "END" in first)
    assert (CUT_MARK.strip() in first) is cut and (len(first) <= 2000) is cut
    assert (recording.asked > 0) is cut
