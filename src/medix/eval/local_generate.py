"""Batched greedy generation with transformers on this machine (CPU works; a GPU is used when present).

Text-only causal LMs (the embedded SmolLM2) decode `batch_size` questions per `generate()` call with
left padding; vision-language models go through `medix.infer.LocalBackend` one question at a time,
since their processors batch images of different sizes unevenly.
"""

from __future__ import annotations

import torch

from medix.errors import MedixError
from medix.eval.config import EvalConfig
from medix.eval.schema import EvalItem
from medix.infer import LocalBackend, load_image, zoo_entry


class LocalGenerator:
    def __init__(self, cfg: EvalConfig):
        from medix.eval.generate import user_prompt

        self.cfg, self.user_prompt = cfg, user_prompt
        entry = zoo_entry(cfg.model)
        self.vision = entry.vision
        self.backend = LocalBackend(entry.hub_id, entry.vision)

    def _messages(self, item: EvalItem) -> list[dict]:
        system = [{"role": "system", "content": self.cfg.system_prompt}] if self.cfg.system_prompt else []
        return system + [{"role": "user", "content": self.user_prompt(self.cfg, item)}]

    def generate(self, items: list[EvalItem]) -> list[str]:
        if self.vision:
            if self.cfg.system_prompt:
                raise MedixError("--system-prompt is not supported for local vision models; use --backend openai")
            return [self.backend.generate(self.user_prompt(self.cfg, item),
                                          load_image(item.images[0]) if item.images else None,
                                          self.cfg.max_new_tokens) for item in items]
        model, tokenizer = self.backend._load()
        texts = [tokenizer.apply_chat_template(self._messages(item), add_generation_prompt=True, tokenize=False)
                 for item in items]
        enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                        add_special_tokens=False).to(model.device)
        sampling = {"do_sample": False} if self.cfg.temperature == 0 else \
            {"do_sample": True, "temperature": self.cfg.temperature}
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=self.cfg.max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id, **sampling)
        new = out[:, enc["input_ids"].shape[1]:]  # (batch, new tokens): the prompt is the same width for all rows
        return tokenizer.batch_decode(new, skip_special_tokens=True)
