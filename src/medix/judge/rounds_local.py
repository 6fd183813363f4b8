"""The `local` backend of the conversational judge: verdicts from next-token logits, round by round.

Each round is one batched forward pass over every open conversation (chat template applied, assistant
turn open). Binary: YES vs NO by the log-sum-exp of their one-token spellings. Rubric: the argmax over
the one-token digits 0-5. The chosen token becomes the assistant's reply in the conversation, and the
next round's question is appended, exactly as a generating judge would see it.
"""

from __future__ import annotations

import torch

from medix.judge.local_backend import LocalBackend, _single_token_ids
from medix.judge.rounds import RoundRequest, RoundVerdict, combine

_DIGITS = tuple(str(d) for d in range(6))


def _digit_ids(tokenizer) -> list[int]:
    """One token id per digit 0..5 (the bare digit; SmolLM2 and Qwen tokenise digits singly)."""
    ids = []
    for digit in _DIGITS:
        found = _single_token_ids(tokenizer, (digit,))
        if not found:
            raise ValueError(f"judge tokenizer has no single token for the digit {digit}")
        ids.append(min(found))
    return ids


@torch.inference_mode()
def last_logits(backend: LocalBackend, texts: list[str]) -> torch.Tensor:
    """(len(texts), vocab) next-token logits; batched by similar length to cut padding."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[torch.Tensor | None] = [None] * len(texts)
    size = backend.config.batch_size
    for start in range(0, len(order), size):
        idx = order[start:start + size]
        enc = backend.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, padding_side="left",
                                truncation=True, max_length=backend.config.max_input_tokens).to(backend.model.device)
        logits = backend.model(**enc, logits_to_keep=1).logits[:, -1, :].float()  # (batch, vocab)
        for row, i in enumerate(idx):
            out[i] = logits[row].cpu()
    return torch.stack(out)


def local_verdicts(judge, backend: LocalBackend, requests: list[RoundRequest]) -> list[RoundVerdict]:
    """All rounds for a batch of requests; `judge` is the ConversationJudge (prompts, round count)."""
    tok = backend.tokenizer
    digits = torch.tensor(_digit_ids(tok))
    conversations = [[{"role": "user", "content": judge.first_prompt(r)}] for r in requests]
    verdicts = [RoundVerdict(score=None) for _ in requests]
    for round_no in range(judge.rounds):
        if round_no:
            for conv, req in zip(conversations, requests):
                conv.append({"role": "user", "content": judge.followup(req.kind)})
        texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
        try:
            logits = last_logits(backend, texts)
        except (RuntimeError, ValueError) as err:  # e.g. out of memory: the whole batch fails visibly
            for v in verdicts:
                v.error = f"round {round_no + 1}: {err.__class__.__name__}: {str(err)[:200]}"
            return verdicts
        yes = torch.logsumexp(logits[:, backend.yes_ids], dim=-1)
        no = torch.logsumexp(logits[:, backend.no_ids], dim=-1)
        best_digit = logits[:, digits].argmax(dim=-1)
        for i, (req, conv, v) in enumerate(zip(requests, conversations, verdicts)):
            if req.kind == "rubric":
                value, reply = float(best_digit[i]), f'{{"score": {int(best_digit[i])}}}'
            else:
                value = 1.0 if yes[i] > no[i] else 0.0
                reply = "YES" if value else "NO"
            v.rounds.append(value)
            v.raws.append(reply)
            v.attempts += 1
            conv.append({"role": "assistant", "content": reply})
    for req, v in zip(requests, verdicts):
        v.score = combine(req.kind, v.rounds)
    return verdicts
