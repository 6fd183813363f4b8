import pytest

from medix.judge.parse import parse_verdict


@pytest.mark.parametrize("text,expected", [
    ("YES", 1.0), ("no", 0.0), ("**Yes.**", 1.0), ("Answer: NO", 0.0), ('{"verdict": "yes"}', 1.0),
    ('{"verdict": "NO", "why": "different"}', 0.0), ("YES - not 'no' as you might think", 1.0),
    ("Correct", 1.0), ("The candidate is not correct.", 0.0), ("incorrect", 0.0),
    ("", None), (None, None), ("~~ lorem ipsum ~~", None), ("maybe", None),
])
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected
