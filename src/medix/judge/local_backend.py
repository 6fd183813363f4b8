"""In-process judge: a YES/NO verdict from ONE batched forward pass, no generation.

For each prompt the chat template is applied with the assistant turn open, and the next-token logits
of the single-token spellings of YES (`Yes`, ` yes`, …) are compared with those of NO. p_yes is the
softmax over the two log-sum-exps; the verdict is YES iff p_yes > 0.5.
"""

from __future__ import annotations

import asyncio

import torch

from medix.config import JudgeConfig
from medix.judge.types import Verdict
from medix.models import load_causal_lm

_YES_SPELLINGS = ("YES", "Yes", "yes", " YES", " Yes", " yes")
_NO_SPELLINGS = ("NO", "No", "no", " NO", " No", " no")


def _single_token_ids(tokenizer, spellings: tuple[str, ...]) -> set[int]:
    ids = (tokenizer.encode(s, add_special_tokens=False) for s in spellings)
    return {tok[0] for tok in ids if len(tok) == 1}  # multi-token spellings would compare a shared prefix


class LocalBackend:
    method = "logits"

    def __init__(self, config: JudgeConfig):
        self.config = config
        self.model, self.tokenizer = load_causal_lm(config.model, config.device)
        yes = _single_token_ids(self.tokenizer, _YES_SPELLINGS)
        no = _single_token_ids(self.tokenizer, _NO_SPELLINGS)
        if not yes or not no or yes & no:
            raise ValueError(f"judge model {config.model!r}: its tokenizer has no distinct one-token YES/NO")
        # Over-long prompts lose their beginning, never the closing "Reply with one word: YES or NO".
        self.tokenizer.truncation_side = "left"
        self.yes_ids = torch.tensor(sorted(yes))
        self.no_ids = torch.tensor(sorted(no))

    def render(self, prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    @torch.inference_mode()
    def p_yes(self, prompts: list[str]) -> list[float]:
        """p(YES) for each prompt; batches are built from prompts of similar length to cut padding."""
        texts = [self.render(p) for p in prompts]
        lengths = [len(t) for t in texts]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        out = [0.0] * len(texts)
        size = self.config.batch_size
        for start in range(0, len(order), size):
            idx = order[start:start + size]
            enc = self.tokenizer(
                [texts[i] for i in idx], return_tensors="pt", padding=True, padding_side="left",
                truncation=True, max_length=self.config.max_input_tokens,
            ).to(self.model.device)
            # logits_to_keep=1: only the last position's logits are computed -> (batch, 1, vocab)
            logits = self.model(**enc, logits_to_keep=1).logits[:, -1, :].float()
            yes = torch.logsumexp(logits[:, self.yes_ids.to(logits.device)], dim=-1)
            no = torch.logsumexp(logits[:, self.no_ids.to(logits.device)], dim=-1)
            for i, p in zip(idx, torch.sigmoid(yes - no).tolist()):  # sigmoid(a-b) = softmax([a, b])[0]
                out[i] = p
        return out

    async def verdicts(self, prompts: list[str]) -> list[Verdict]:
        loop = asyncio.get_running_loop()
        try:
            probs = await loop.run_in_executor(None, self.p_yes, prompts)
        except (RuntimeError, ValueError) as err:  # e.g. out of memory: every sample fails visibly
            return [Verdict(None, error=f"{err.__class__.__name__}: {str(err)[:200]}", attempts=1) for _ in prompts]
        return [Verdict(1.0 if p > 0.5 else 0.0, raw=f"p_yes={p:.4f}", attempts=1) for p in probs]

    async def aclose(self) -> None:
        return None
