"""Greedy answers on held-out samples, scored with the composite reward (validation, demo before/after)."""

from __future__ import annotations

import torch

from medix.rewards.composite import CompositeReward
from medix.rewards.scoring import summarize


@torch.inference_mode()
def generate_greedy(model, processing, prompts: list[list[dict]], images: list[list] | None,
                    max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy completions for chat prompts (left-padded batches)."""
    tokenizer = getattr(processing, "tokenizer", processing)
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            texts = [processing.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in chunk]
            kwargs = {"text": texts} if processing is not tokenizer else {}
            chunk_images = images[start:start + batch_size] if images else None
            if chunk_images and any(chunk_images):
                kwargs["images"] = [img for imgs in chunk_images for img in imgs]
            enc = (processing(**kwargs, return_tensors="pt", padding=True, padding_side="left") if kwargs
                   else tokenizer(texts, return_tensors="pt", padding=True, padding_side="left"))
            enc = enc.to(model.device)
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return out


class Validator:
    def __init__(self, dataset, processing, composite: CompositeReward, max_new_tokens: int, limit: int | None):
        rows = dataset.select(range(min(len(dataset), limit or len(dataset))))
        self.rows, self.processing, self.composite, self.max_new_tokens = rows, processing, composite, max_new_tokens

    def run(self, model) -> dict:
        images = self.rows["images"] if "images" in self.rows.column_names else None
        responses = generate_greedy(model, self.processing, self.rows["prompt"], images, self.max_new_tokens)
        has_image = [bool(i) for i in images] if images else [False] * len(responses)
        results = self.composite.score(responses, self.rows["solution"], self.rows["problem"], has_image)
        self.last = [{"id": i, "response": r, **res.to_dict()}
                     for i, r, res in zip(self.rows["id"], responses, results)]
        return summarize(results)
