"""Judge replies: only the verdict the prompt's contract asks for is read (medix.judge.parse)."""

import math

import pytest

from medix.judge.parse import combine_rounds, parse_reply, parse_rubric, parse_verdict


# readout "yesno": a leading YES / NO that ends the reply or is followed by punctuation
@pytest.mark.parametrize("text,expected", [
    ("YES", 1.0), ("no", 0.0), ("**Yes.**", 1.0), ("Answer: NO", 0.0), ("Verdict - yes", 1.0),
    ("YES - not 'no' as you might think", 1.0), ("No, it names option C.", 0.0), ("YES\nThe option matches.", 1.0),
    # not a verdict word leading the reply: no verdict (retried), never a guess
    ("No doubt: the candidate is correct.", None), ("Yesterday's answer", None), ("Nothing matches", None),
    ("Correct", None), ("The candidate is not correct.", None), ("incorrect", None), ('{"verdict": "yes"}', None),
    ('{"score": 1}', None), ("", None), (None, None), ("~~ lorem ipsum ~~", None), ("maybe", None),
])
def test_parse_verdict_reads_a_leading_verdict_word_only(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize("text,expected", [
    # thinking judges: the reasoning (with the opposite word in it) is dropped before parsing
    ("<think>hmm, no, wait... the answer is right</think>YES", 1.0),
    ("<think>yes it matches? no.</think>\n\nNO", 0.0),
    ("<thinking>first</thinking> draft <thinking>second: yes</thinking>No.", 0.0),
    ("<think>The answer says no, the reference says", None),  # never closed: no verdict
    ("<think>\n", None),
])
def test_parse_verdict_after_thinking(text, expected):
    assert parse_verdict(text) == expected


# medix's rubric prompts ask for {"score": n}, n in 0..5: nothing else is read
@pytest.mark.parametrize("text,expected", [
    ('<think>score 1? no, it is a 5</think>{"score": 4}', 4.0), ('{"score": 7}', None), ("Score: 3/5", None),
    ("covers 2 of the 3 key findings", None), ("**5**", None), ('{"score": -1}', None),
    ('<think>unfinished {"score": 5}', None), ('```json\n{"score": 3}\n```', 3.0), ('Sure. {"score": 2}', 2.0),
    ('{"score": "4"}', None), ('{"score": true}', None),
])
def test_parse_rubric_reads_the_json_score_only(text, expected):
    assert parse_rubric(text) == expected


# The paper protocol: the official parser, written from the official eval/utils.py. Per reply: strip through
# the last "</think>" (else "</thinking>"), take text[first "{" : last "}"], json.loads, ["score"]; a binary
# round counts 1 iff that value == 1 in Python (scores.count(1)), a rubric round is the value itself (mean of
# the rounds); a reply where the parse raises is no verdict.
OFFICIAL = [  # reply, binary round, rubric round
    ('{"score": 1}', 1.0, 1.0),
    ('{"score": 0}', 0.0, 0.0),
    ('{"score": "1"}', 0.0, None),  # a string is not 1; the official mean of strings raises
    ('{"score": true}', 1.0, 1.0),  # True == 1
    ('{"score": 1.0}', 1.0, 1.0),
    ('{"score": 2}', 0.0, 2.0),  # binary: that round is 0
    ('{"score": 7}', 0.0, 7.0),  # rubric: accepted, unbounded
    ('{"score": null}', 0.0, None),
    ('```json\n{\n"score": 1\n}\n```', 1.0, 1.0),
    ('<think>is it {"score": 0}?</think>\n{"score": 1}', 1.0, 1.0),
    ('<thinking>maybe</thinking>{"score": 4}', 0.0, 4.0),
    ("YES", None, None),  # no JSON object: the official json.loads raises
    ('{"verdict": 1}', None, None),  # no "score" key: KeyError
    ('{"score": 1', None, None),
]


@pytest.mark.parametrize("text,binary,rubric", OFFICIAL)
def test_paper_readout_is_the_official_parser(text, binary, rubric):
    assert parse_reply("binary", text, "json_score") == binary
    assert parse_reply("rubric", text, "json_score") == rubric


def test_rounds_combine_as_the_official_code():
    assert combine_rounds("binary", [1.0, 0.0, 1.0]) == 1.0  # scores.count(1) >= 2
    assert combine_rounds("binary", [1.0, 0.0, 0.0]) == 0.0
    assert combine_rounds("rubric", [4.0, 5.0, 3.0]) == 4.0  # sum / len


@pytest.mark.parametrize("body,missing", [
    ("Is it right? Reply YES or NO.", "{{ candidate }} or {{ reference }}"),
    ("Reference: {{ reference }}. YES or NO?", "{{ candidate }}"),
    ("{% if question %}{{ question }}{% endif %} Answer: {{ candidate }}", "{{ reference }}"),
])
def test_a_template_that_never_shows_the_answer_or_reference_is_refused(tmp_path, body, missing):
    from medix.judge.config import JudgeConfig
    from medix.errors import MedixError
    from medix.judge import Judge

    path = tmp_path / "mine.jinja"
    path.write_text(body)
    for field in ("template", "rubric_template"):
        with pytest.raises(MedixError, match=rf"mine.jinja never uses {missing}"):
            Judge(JudgeConfig(**{field: str(path)}))


def test_paper_parse_reads_after_the_last_think_close():
    """The official parser splits on `</think>` and keeps the last piece: a reply that reasons in two blocks,
    with a decoy score between them, is read from the text after the second close."""
    from medix.judge.parse import parse_paper

    reply = '<think>first pass</think>{"score": 0} <think>second look</think>\n{"score": 1}'
    assert parse_paper("binary", reply) == 1.0
    assert parse_paper("rubric", '<think>a</think>{"score": 1}<think>b</think>{"score": 4}') == 4.0


def _logprob_reply(tokens):
    """An OpenAI chat response whose logprobs hold `tokens`: (token, {alternative: probability})."""
    from types import SimpleNamespace as NS

    content = [NS(token=t, logprob=math.log(alts.get(t, 1.0)),
                  top_logprobs=[NS(token=a, logprob=math.log(p)) for a, p in alts.items()]) for t, alts in tokens]
    return NS(choices=[NS(logprobs=NS(content=content))])


@pytest.mark.parametrize("tokens,expected", [
    ([("YES", {"YES": 0.6, "NO": 0.2, "Yes": 0.1})], 0.7 / 0.9),  # every spelling of each word counts
    # the reasoning is skipped, <thinking> as <think>: the verdict token is the one after the block
    ([("<thinking>", {}), ("no", {"no": 0.9, "yes": 0.1}), ("</thinking>", {}),
      (" YES", {" YES": 0.8, " NO": 0.2})], 0.8),
    ([("<think>", {}), ("yes", {"yes": 1.0}), ("</think>", {}), ("**", {}), ("No", {"No": 0.75, "Yes": 0.25})], 0.25),
    ([("<thinking>", {}), ("no", {"no": 1.0})], None),  # a block that never closes holds no verdict token
    # a second block opened after the first closed: still reasoning (the first-close test took "no" for the verdict)
    ([("<think>", {}), ("a", {}), ("</think>", {}), ("<think>", {}), ("no", {"no": 1.0})], None),
])
def test_p_yes_from_logprobs_reads_the_verdict_token_after_the_reasoning(tokens, expected):
    from medix.judge.openai_backend import verdict_probability

    got = verdict_probability(_logprob_reply(tokens))
    assert got == (None if expected is None else pytest.approx(expected))
