"""Answers on held-out samples (greedy unless a temperature is given), scored with the composite reward
(validation, demo before/after)."""

from __future__ import annotations

from medix.generation import generate
from medix.rewards.components import image_present
from medix.rewards.composite import CompositeReward
from medix.rewards.scoring import summarize


class Validator:
    def __init__(self, dataset, processing, composite: CompositeReward, max_new_tokens: int, limit: int | None,
                 temperature: float = 0.0, top_p: float = 1.0):
        rows = dataset.select(range(min(len(dataset), limit or len(dataset))))
        self.rows, self.processing, self.composite, self.max_new_tokens = rows, processing, composite, max_new_tokens
        self.temperature, self.top_p = temperature, top_p

    def run(self, model) -> dict:
        images = self.rows["images"] if "images" in self.rows.column_names else None
        responses = generate(model, self.processing, self.rows["prompt"], images, self.max_new_tokens,
                             self.temperature, self.top_p)
        has_image = [image_present(i) for i in images] if images else [False] * len(responses)
        results = self.composite.score(responses, self.rows["solution"], self.rows["problem"], has_image)
        self.last = [{"id": i, "response": r, **res.to_dict()}
                     for i, r, res in zip(self.rows["id"], responses, results)]
        return summarize(results)
