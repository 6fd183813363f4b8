"""Format reward: 1 iff, from the first think tag on, the response is one think block, optional
whitespace, one answer block, then only whitespace (the MediX-R1 rule). Text before the think block
(the modality tag) is judged by the modality reward, not here."""

from __future__ import annotations

from medix.data.response import DEFAULT_THINK_TAGS, parse_response
from medix.rewards.common import completion_text


class FormatReward:
    __name__ = "format"

    def __init__(self, think_tags: tuple[str, ...] = DEFAULT_THINK_TAGS):
        self.think_tags = tuple(think_tags)

    def __call__(self, completions: list, **kwargs) -> list[float]:
        return [float(parse_response(completion_text(c), self.think_tags).well_formed) for c in completions]
