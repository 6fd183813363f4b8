"""The one local generation function: batched, left-padded, greedy or sampled, text or vision models.

    texts = generate(model, processing, [[{"role": "user", "content": "..."}]], max_new_tokens=64)

Used by `medix.policy.LocalPolicy` (what `medix infer` and eval's local generate phase ask through) and by
training validation (held-out prompts). `processing` is a tokenizer (text LMs) or a processor (vision-language
models); conversations of a VLM carry `{"type": "image"}` placeholders and `images[i]` the images of
conversation i, in order.

`generate_ids` is `model.generate` with the prompt prefix every row shares (system prompt, worked examples)
run once instead of once per row, as vLLM's prefix caching does: training's rollouts (the same few-shot prefix,
each prompt `num_generations` times) and held-out answers go through it.
"""

from __future__ import annotations

import torch

# Below this many shared prompt tokens, a separate prefix pass saves less than it costs.
MIN_SHARED_PREFIX = 32


def shared_prefix(rows: list[torch.Tensor]) -> int:
    """How many leading tokens every row has in common, keeping at least one token of each row's own: the
    model still has to run the last prompt token of each row to give its first next-token distribution."""
    n = min(len(r) for r in rows) - 1
    if n <= 0:
        return 0
    same = (torch.stack([r[:n] == rows[0][:n] for r in rows[1:]]).all(0) if len(rows) > 1
            else torch.ones(n, dtype=torch.bool))
    return int(same.long().cumprod(0).sum())


def generate_ids(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, min_prefix: int = MIN_SHARED_PREFIX,
                 **kwargs) -> torch.Tensor:
    """`model.generate(input_ids, attention_mask, **kwargs)` for left-padded text prompts, with the prefix
    shared by all rows computed once and its key/value cache repeated per row. The rows are laid out as
    [prefix][padding][own tokens] — the same width as the input, so the new tokens start at the same column —
    and the padding is masked: positions come from the mask (prefix 0..P-1, own tokens P..), as with left
    padding. Falls back to plain `generate` for vision-language models (image positions), with inputs other
    than ids and mask, a static cache, or a short shared prefix."""
    config = kwargs.get("generation_config") or getattr(model, "generation_config", None)
    rows = [ids[mask.bool()] for ids, mask in zip(input_ids, attention_mask)]
    p = shared_prefix(rows) if len(rows) > 1 else 0
    plain = (p < min_prefix or hasattr(model.config, "vision_config") or "past_key_values" in kwargs
             or any(isinstance(v, torch.Tensor) for v in kwargs.values())
             or getattr(config, "cache_implementation", None) not in (None, "dynamic"))
    generate = type(model).generate  # the class's: `shared_prefix_rollouts` puts this function on the instance
    if plain:
        return generate(model, input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    batch, width = input_ids.shape
    with torch.no_grad():
        cache = model(input_ids=rows[0][None, :p], use_cache=True, logits_to_keep=1).past_key_values
    cache.batch_repeat_interleave(batch)  # (batch, heads, P, dim): one copy per row
    pad = kwargs.get("pad_token_id", getattr(config, "pad_token_id", None))
    ids = torch.full_like(input_ids, pad if pad is not None else 0)  # masked: any id will do
    mask = torch.zeros_like(attention_mask)
    ids[:, :p], mask[:, :p] = rows[0][:p], 1
    for i, row in enumerate(rows):
        own = row[p:]
        ids[i, width - len(own):], mask[i, width - len(own):] = own, 1
    return generate(model, input_ids=ids, attention_mask=mask, past_key_values=cache, **kwargs)


def user_turn(text: str, images: int = 0, system: str | None = None) -> list[dict]:
    """A one-question conversation; `images` placeholders go before the text (vision models)."""
    content = [*({"type": "image"} for _ in range(images)), {"type": "text", "text": text}] if images else text
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]


@torch.inference_mode()
def generate(model, processing, conversations: list[list[dict]], images: list[list] | None = None,
             max_new_tokens: int = 512, temperature: float = 0.0, top_p: float = 1.0,
             batch_size: int = 8) -> list[str]:
    """The new text of each conversation (chat template applied, assistant turn open)."""
    tokenizer = getattr(processing, "tokenizer", processing)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling = {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": temperature,
                                                              "top_p": top_p}
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for start in range(0, len(conversations), batch_size):
            chunk = conversations[start:start + batch_size]
            texts = [processing.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chunk]
            chunk_images = [img for imgs in (images or [])[start:start + batch_size] for img in (imgs or [])]
            if processing is not tokenizer:  # a processor: it expands image placeholders into image tokens
                enc = processing(text=texts, images=chunk_images or None, return_tensors="pt", padding=True,
                                 padding_side="left", add_special_tokens=False)
            else:
                enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                                add_special_tokens=False)
            enc = enc.to(model.device)
            if processing is tokenizer:
                ids = generate_ids(model, enc["input_ids"], enc["attention_mask"], max_new_tokens=max_new_tokens,
                                   pad_token_id=pad_id, **sampling)
            else:
                ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=pad_id, **sampling)
            # (batch, prompt + new): every row's prompt has the same padded width, so the new tokens follow it
            out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return out
