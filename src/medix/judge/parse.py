"""Read a YES/NO verdict out of free judge text, tolerantly."""

from __future__ import annotations

import json
import re

_WORD = re.compile(r"[A-Za-z]+")
_FALLBACK_YES = {"correct", "true", "match", "matches", "equivalent"}
_FALLBACK_NO = {"incorrect", "false", "mismatch", "wrong"}


def parse_verdict(text: str | None) -> float | None:
    """1.0 for YES, 0.0 for NO, None when the text holds no verdict.

    Accepts `YES`, `**No.**`, `Answer: yes`, `{"verdict": "no"}`; the first verdict word wins so a
    trailing explanation ("YES — not 'no' as...") does not flip it.
    """
    if not text:
        return None
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
            if isinstance(data, dict):
                for key in ("verdict", "answer", "match", "correct"):
                    if key in data:
                        return parse_verdict(str(data[key]))
        except json.JSONDecodeError:
            pass
    words = [w.lower() for w in _WORD.findall(stripped[:400])]
    for word in words:  # a plain YES / NO anywhere first
        if word in ("yes", "no"):
            return 1.0 if word == "yes" else 0.0
    for i, word in enumerate(words):  # then "correct" / "incorrect"; "not correct" is a NO
        if word in _FALLBACK_NO or (word in _FALLBACK_YES and i > 0 and words[i - 1] == "not"):
            return 0.0
        if word in _FALLBACK_YES:
            return 1.0
    return None
