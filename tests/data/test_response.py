import pytest

from medix.data.response import parse_response

CASES = [
    # text, modality, reasoning, answer, well_formed
    ("<CT_SCAN> <think>r</think>\n<answer> a </answer>", "CT_SCAN", "r", "a", True),
    ("<ct_scan><thinking>r</thinking><answer>a</answer>", "CT_SCAN", "r", "a", True),
    ("< X_RAY >< think >r</ think >< answer >a</ answer >", "X_RAY", "r", "a", True),
    ("<X_RAY> <THINK>r</THINK> <ANSWER>a</ANSWER>  \n", "X_RAY", "r", "a", True),
    ("<think>r</think><answer>a</answer>", None, "r", "a", True),
    ("<think>r</think><answer>a</answer> trailing", None, "r", "a", False),
    ("<think>r</think> middle <answer>a</answer>", None, "r", "a", False),
    ("<think>r</thinking><answer>a</answer>", None, "r", "a", False),
    ("<think>a<think>b</think></think><answer>c</answer>", None, "a<think>b", "c", False),
    ("<think>r</think><answer>a</answer><answer>b</answer>", None, "r", "a", False),
    ("<think>I might say <answer>x</answer></think><answer>y</answer>", None,
     "I might say <answer>x</answer>", "y", False),
    ("<answer>only</answer>", None, None, "only", False),
    ("<think>unfinished reasoning", None, None, None, False),
    ("<think>r</think><answer>truncated", None, "r", None, False),
    ("plain text", None, None, None, False),
    ("", None, None, None, False),
    ("<FOO> <think>r</think><answer>a</answer>", None, "r", "a", True),
    ("The image is <X_RAY> <think>r</think><answer>a</answer>", None, "r", "a", True),
    ("<X_RAY><CT_SCAN><think>r</think><answer>a</answer>", None, "r", "a", True),
]


@pytest.mark.parametrize("text,modality,reasoning,answer,well_formed", CASES)
def test_parse(text, modality, reasoning, answer, well_formed):
    parsed = parse_response(text)
    assert (parsed.modality, parsed.reasoning, parsed.answer, parsed.well_formed) == (
        modality, reasoning, answer, well_formed)


def test_narrowed_think_tags():
    assert parse_response("<thinking>r</thinking><answer>a</answer>", ("think",)).well_formed is False
    assert parse_response("<thinking>r</thinking><answer>a</answer>", ("thinking",)).well_formed is True


def test_huge_response_is_fast_and_safe():
    text = "<X_RAY><think>" + "x" * 200_000 + "</think><answer>" + "y" * 100_000 + "</answer>"
    parsed = parse_response(text)
    assert parsed.well_formed and len(parsed.answer) == 100_000
