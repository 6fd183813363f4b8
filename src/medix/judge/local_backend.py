"""In-process judge: verdicts from next-token logits, no generation — in both judging modes.

For each conversation the chat template is applied with the assistant turn open, and ONE batched forward
pass gives the next-token logits. Binary: p_yes = softmax over the log-sum-exps of the one-token
spellings of YES and NO (YES iff p_yes > judge.threshold). Rubric: the argmax over the one-token digits 0-5.
In a multi-round conversation the chosen token becomes the assistant's reply and the follow-up question
is appended, exactly as a generating judge would see it. On CPU (with `shared_prefix`) each conversation
keeps its key/value cache from round to round, so a round runs only its new tokens; elsewhere each round
is one batched pass over all open conversations.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import AsyncIterator

import torch

from medix.judge.config import JudgeConfig
from medix.judge.parse import combine_rounds, spellings
from medix.judge.types import LOCAL_RESERVE_TOKENS, Conversation, Verdict
from medix.models import load_causal_lm, runtime_dtype

log = logging.getLogger(__name__)


def cache_argument(model) -> str:
    """The forward keyword for the KV cache: `cache` from transformers 5.x (where `past_key_values` warns that
    it goes in 5.40), `past_key_values` in earlier releases of the allowed range."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(output):
    """The KV cache of a forward's output, under either name (the old one is a warning property in 5.x)."""
    return output["cache"] if "cache" in output else output.past_key_values

_YES_SPELLINGS, _NO_SPELLINGS = spellings("yes"), spellings("no")
_DIGITS = tuple(str(d) for d in range(6))


def single_token_ids(tokenizer, spellings: tuple[str, ...]) -> set[int]:
    ids = (tokenizer.encode(s, add_special_tokens=False) for s in spellings)
    return {tok[0] for tok in ids if len(tok) == 1}  # multi-token spellings would compare a shared prefix


def _common(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _failure(err: Exception, prefix: str = "") -> str:
    return f"{prefix}{err.__class__.__name__}: {str(err)[:200]}"


class LocalBackend:
    def __init__(self, config: JudgeConfig):
        self.config = config
        self.dtype = runtime_dtype(config.device, config.dtype)
        self.model, self.tokenizer = load_causal_lm(config.model, config.device, self.dtype)
        log.info("judge %s runs in %s on %s (judge.dtype %s)", config.model, self.dtype, self.model.device,
                 config.dtype)
        self._cache_arg = cache_argument(self.model)
        yes = single_token_ids(self.tokenizer, _YES_SPELLINGS)
        no = single_token_ids(self.tokenizer, _NO_SPELLINGS)
        if not yes or not no or yes & no:
            raise ValueError(f"judge model {config.model!r}: its tokenizer has no distinct one-token YES/NO")
        # Never truncated: the Judge shortens only the question of a prompt past this (`fits`).
        self.context_tokens = config.max_input_tokens or getattr(self.model.config, "max_position_embeddings", 2048)
        self.yes_ids = torch.tensor(sorted(yes))
        self.no_ids = torch.tensor(sorted(no))
        self._digit_ids: torch.Tensor | None = None

    def fits(self, prompt: str) -> bool:
        """The prompt's tokens plus the conversation's reserve are within the model's context."""
        if len(prompt.encode("utf-8")) + LOCAL_RESERVE_TOKENS <= self.context_tokens:
            return True  # a token spans at least one byte
        tokens = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return tokens + LOCAL_RESERVE_TOKENS <= self.context_tokens

    @property
    def digit_ids(self) -> torch.Tensor:
        """One token id per digit 0..5 (the bare digit; SmolLM2 and Qwen tokenise digits singly)."""
        if self._digit_ids is None:
            ids = []
            for digit in _DIGITS:
                found = single_token_ids(self.tokenizer, (digit,))
                if not found:
                    raise ValueError(f"judge tokenizer has no single token for the digit {digit}")
                ids.append(min(found))
            self._digit_ids = torch.tensor(ids)
        return self._digit_ids

    def render(self, conversations: list[list[dict]], reply_prefix: str = "") -> list[str]:
        switch = {} if self.config.thinking == "auto" else {"enable_thinking": self.config.thinking == "on"}
        return [self.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False, **switch)
                + reply_prefix for c in conversations]

    @torch.inference_mode()
    def next_token_logits(self, conversations: list[list[dict]], reply_prefix: str = "") -> torch.Tensor:
        """(len(conversations), vocab) next-token logits of the assistant's reply, after `reply_prefix`
        (e.g. '{"score": ' so the next token is the score). With `shared_prefix`, prompts that start with
        the same tokens (a GRPO group: same question and reference) share one prefix pass."""
        texts = self.render(conversations, reply_prefix)
        out: list[torch.Tensor | None] = [None] * len(texts)
        alone = list(range(len(texts)))
        if self.config.shared_prefix and len(texts) > 1:
            alone = self._shared_prefix_logits(texts, out)
        order = sorted(alone, key=lambda i: len(texts[i]))
        size = self.config.batch_size
        for start in range(0, len(order), size):
            idx = order[start:start + size]
            enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                                 padding_side="left").to(self.model.device)
            # logits_to_keep=1: only the last position's logits are computed -> (batch, 1, vocab)
            logits = self.model(**enc, logits_to_keep=1).logits[:, -1, :].float().cpu()
            for row, i in enumerate(idx):
                out[i] = logits[row]
        return torch.stack(out)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prefix_groups(self, ids: list[list[int]]) -> list[list[int]]:
        """Indices of `ids` in groups of up to batch_size that share most of their tokens (singletons for
        the rest). A prompt joins a group only when the shared part is most of it (a GRPO group: same
        question and reference); prompts sharing just the template's opening lines gain little."""
        order = sorted(range(len(ids)), key=lambda i: ids[i])  # equal prefixes become neighbours
        groups: list[list[int]] = []
        for i in order:
            group = groups[-1] if groups else []
            shared = _common(ids[group[0]], ids[i]) if group else 0
            if group and len(group) < self.config.batch_size and shared >= self.config.min_shared_tokens \
                    and shared * 2 >= len(ids[i]):
                group.append(i)
            else:
                groups.append([i])
        return groups

    def _shared_prefix_logits(self, texts: list[str], out: list) -> list[int]:
        """Fill `out` for prompts that share a token prefix with others (one pass over the prefix, its
        key/value cache repeated per member, one batched pass over the differing suffixes); returns the
        indices left alone."""
        ids = [self._ids(t) for t in texts]
        alone: list[int] = []
        for group in self._prefix_groups(ids):
            if len(group) == 1:
                alone += group
                continue
            for j, logits in zip(group, self._group_logits([ids[g] for g in group])):
                out[j] = logits
        return alone

    def _group_logits(self, seqs: list[list[int]]) -> torch.Tensor:
        """(len(seqs), vocab) last-token logits of sequences sharing a prefix."""
        device = self.model.device
        shared = min(min(_common(seqs[0], s) for s in seqs), min(len(s) for s in seqs) - 1)  # ≥ 1 suffix token each
        prefix = torch.tensor([seqs[0][:shared]], device=device)  # (1, P)
        cache = _cache_of(self.model(input_ids=prefix, use_cache=True, logits_to_keep=1))  # logits unused
        cache.batch_repeat_interleave(len(seqs))  # (B, heads, P, dim): one copy per member
        suffixes = [s[shared:] for s in seqs]
        width = max(len(s) for s in suffixes)
        pad = self.tokenizer.pad_token_id or 0
        # (B, S), right-padded
        suffix_ids = torch.tensor([s + [pad] * (width - len(s)) for s in suffixes], device=device)
        suffix_mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in suffixes], device=device)
        mask = torch.cat([torch.ones(len(seqs), shared, dtype=suffix_mask.dtype, device=device), suffix_mask], dim=1)
        positions = (shared + torch.arange(width, device=device)).expand(len(seqs), width)
        # Only the positions some member ends at go through the LM head: (B, k, vocab), k = distinct lengths.
        ends = sorted({len(s) - 1 for s in suffixes})
        logits = self.model(input_ids=suffix_ids, attention_mask=mask, position_ids=positions,
                            **{self._cache_arg: cache}, logits_to_keep=torch.tensor(ends, device=device)).logits
        column = torch.tensor([ends.index(len(s) - 1) for s in suffixes], device=device)
        return logits[torch.arange(len(seqs), device=device), column].float().cpu()

    def yes_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """(n,) p_yes from (n, vocab) logits; sigmoid(a − b) = softmax([a, b])[0]."""
        yes = torch.logsumexp(logits[:, self.yes_ids], dim=-1)
        no = torch.logsumexp(logits[:, self.no_ids], dim=-1)
        return torch.sigmoid(yes - no)

    def p_yes(self, prompts: list[str]) -> list[float]:
        """p(YES) for each one-turn prompt."""
        logits = self.next_token_logits([[{"role": "user", "content": p}] for p in prompts])
        return self.yes_probability(logits).tolist()

    def too_long(self, prompt: str) -> Verdict:
        return Verdict(None, error=f"prompt past the judge's context of {self.context_tokens} tokens even with "
                       "its question shortened (the reference and candidate are never cut)", attempts=0)

    async def verdicts(self, prompts: list[str]) -> list[Verdict]:
        out: list[Verdict | None] = [None if self.fits(p) else self.too_long(p) for p in prompts]
        todo = [i for i, v in enumerate(out) if v is None]
        try:
            probs = await asyncio.to_thread(self.p_yes, [prompts[i] for i in todo]) if todo else []
        except (RuntimeError, ValueError) as err:  # e.g. out of memory: every sample fails visibly
            probs = [None] * len(todo)
            failure = _failure(err)
        for i, p in zip(todo, probs):
            out[i] = Verdict(None, error=failure, attempts=1) if p is None else \
                Verdict(float(p > self.config.threshold), attempts=1, p_yes=p)
        return out

    def _reply(self, conversation: Conversation, logits: torch.Tensor, json_score: bool) -> tuple[float, str]:
        """(value, reply text) of one round from the (vocab,) next-token logits."""
        digits = logits[self.digit_ids]  # the one-token digits 0..5
        if conversation.kind == "rubric":
            value = float(digits.argmax())
            return value, f'{{"score": {int(value)}}}'
        yes = digits[1] > digits[0] if json_score else self.yes_probability(logits[None])[0] > self.config.threshold
        value = 1.0 if yes else 0.0
        return value, f'{{"score": {int(value)}}}' if json_score else ("YES" if value else "NO")

    def conversation_verdicts(self, conversations: list[Conversation], rounds: int) -> list[Verdict]:
        """Every round of a batch of conversations (blocking). On CPU with `shared_prefix`, conversation by
        conversation with key/value caches kept across rounds; otherwise one batched pass per round."""
        # JSON contract ({"score": n}): the reply is opened for the judge and the score digit read next.
        json_score = bool(conversations) and conversations[0].readout == "json_score"
        prefix = '{"score": ' if json_score else ""
        if self.config.shared_prefix and self.model.device.type == "cpu":
            verdicts = self._incremental_rounds(conversations, rounds, prefix, json_score)
        else:
            verdicts = self._batched_rounds(conversations, rounds, prefix, json_score)
        for c, v in zip(conversations, verdicts):
            if v.error is None:
                v.score = combine_rounds(c.kind, v.rounds)
                v.raw = v.raws[-1] if v.raws else None
        return verdicts

    def _batched_rounds(self, conversations: list[Conversation], rounds: int, prefix: str,
                        json_score: bool) -> list[Verdict]:
        """Each round is one batched pass over every conversation's whole history (GPU: batching pays)."""
        messages = [[{"role": "user", "content": c.first}] for c in conversations]
        verdicts = [Verdict(None) for _ in conversations]
        for round_no in range(rounds):
            if round_no:
                for conv, c in zip(messages, conversations):
                    conv.append({"role": "user", "content": c.followup})
            try:
                logits = self.next_token_logits(messages, prefix)
            except (RuntimeError, ValueError) as err:  # e.g. out of memory: the whole batch fails visibly
                for v in verdicts:
                    v.error = _failure(err, f"round {round_no + 1}: ")
                return verdicts
            for c, conv, v, row in zip(conversations, messages, verdicts, logits):
                self._record(v, conv, *self._reply(c, row, json_score))
        return verdicts

    @staticmethod
    def _record(verdict: Verdict, conversation: list[dict], value: float, reply: str) -> None:
        verdict.rounds.append(value)
        verdict.raws.append(reply)
        verdict.attempts += 1
        conversation.append({"role": "assistant", "content": reply})

    @torch.inference_mode()
    def _incremental_rounds(self, conversations: list[Conversation], rounds: int, prefix: str,
                            json_score: bool) -> list[Verdict]:
        """On CPU the cost is the tokens run, so each conversation keeps its key/value cache from round to
        round: round r runs only what round r-1 did not (the reply and the follow-up), and round 1 of
        conversations sharing most of their first prompt (one question and reference) starts from one pass
        over that prefix. Same logits as the batched path (tests/judge/test_local_models.py)."""
        firsts = [[{"role": "user", "content": c.first}] for c in conversations]
        first_ids = [self._ids(t) for t in self.render(firsts, prefix)]
        verdicts = [Verdict(None) for _ in conversations]
        for group in self._prefix_groups(first_ids):
            seqs = [first_ids[g] for g in group]
            shared = min(min(_common(seqs[0], q) for q in seqs), min(len(q) for q in seqs) - 1)
            base = None
            if len(group) > 1 and shared > 0:
                base = self._extend(None, seqs[0][:shared])[1]
            for i in group:
                cache = copy.deepcopy(base) if base is not None else None
                seen = first_ids[i][:shared] if base is not None else []
                messages = firsts[i]
                try:
                    for round_no in range(rounds):
                        if round_no:
                            messages.append({"role": "user", "content": conversations[i].followup})
                        ids = first_ids[i] if round_no == 0 else self._ids(self.render([messages], prefix)[0])
                        keep = min(_common(seen, ids), len(ids) - 1)  # ≥ 1 new token gives the next logits
                        if cache is not None and cache.get_seq_length() > keep:
                            cache.crop(keep - cache.get_seq_length())  # drop what differs (negative: from the end)
                        logits, cache = self._extend(cache if keep else None, ids[keep:])
                        seen = ids
                        self._record(verdicts[i], messages, *self._reply(conversations[i], logits, json_score))
                except (RuntimeError, ValueError) as err:  # e.g. out of memory: this conversation fails visibly
                    verdicts[i].error = _failure(err, f"round {len(verdicts[i].rounds) + 1}: ")
        return verdicts

    def _extend(self, cache, ids: list[int]):
        """(last-token logits (vocab,), cache) after running `ids` on top of `cache` (None: from scratch)."""
        out = self.model(input_ids=torch.tensor([ids], device=self.model.device), **{self._cache_arg: cache},
                         use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float().cpu(), _cache_of(out)

    async def converse(self, conversations: list[Conversation], rounds: int) -> AsyncIterator[tuple[int, Verdict]]:
        fitting = []
        for i, c in enumerate(conversations):
            if self.fits(c.first):
                fitting.append(i)
            else:
                yield i, self.too_long(c.first)
        size = max(self.config.batch_size * 4, 1)  # results stream out chunk by chunk (resumable eval)
        for start in range(0, len(fitting), size):
            chunk = fitting[start:start + size]
            done = await asyncio.to_thread(self.conversation_verdicts, [conversations[i] for i in chunk], rounds)
            for i, verdict in zip(chunk, done):
                yield i, verdict

    async def aclose(self) -> None:
        return None
