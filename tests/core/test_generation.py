"""`medix.generation.generate_ids`: the prompt prefix every row shares is run once, and the tokens are those of
plain `generate` (the embedded SmolLM2-135M on the demo's few-shot prompts); where it must not apply, it is
plain `generate`; and training's rollouts go through it except where every forward is a collective."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pytest
import torch

from medix.generation import generate_ids, shared_prefix


@pytest.mark.parametrize("rows, expected", [
    ([[1, 2, 3, 4], [1, 2, 3, 5]], 3),
    ([[1, 2, 3], [1, 2, 3]], 2),  # identical prompts: the last token stays each row's own
    ([[1, 2, 3, 4], [1, 2]], 1),  # the shorter row keeps its last token
    ([[9, 2], [1, 2]], 0),
    ([[1, 2, 3, 4, 5]], 4),
])
def test_shared_prefix_counts_the_common_leading_tokens(rows, expected):
    assert shared_prefix([torch.tensor(r) for r in rows]) == expected


@pytest.fixture(scope="module")
def smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medix.models import smollm2_folder

    folder = smollm2_folder()
    return (AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(folder))


def _demo_batch(tokenizer, questions: list[str]):
    from medix.train.demo import FEW_SHOT

    def conversation(q):
        turns = [{"role": "system", "content": "You are a concise medical assistant."}]
        for shot in FEW_SHOT:
            turns += [{"role": "user", "content": shot["problem"]}, {"role": "assistant", "content": shot["response"]}]
        return turns + [{"role": "user", "content": q}]

    texts = [tokenizer.apply_chat_template(conversation(q), tokenize=False, add_generation_prompt=True)
             for q in questions]
    return tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)


def test_greedy_tokens_equal_plain_generate_and_the_prefix_runs_once(smollm2):
    from medix.train.demo import DEMO_DATA

    model, tokenizer = smollm2
    questions = [json.loads(line)["problem"] for line in (DEMO_DATA / "heldout.jsonl").read_text().splitlines()][:6]
    enc = _demo_batch(tokenizer, questions)  # prompts of different lengths: left padding differs by row
    assert len({int(m.sum()) for m in enc["attention_mask"]}) > 1
    kwargs = {"max_new_tokens": 24, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    seen = []
    hook = model.model.embed_tokens.register_forward_hook(lambda mod, args, out: seen.append(tuple(args[0].shape)))
    try:
        with torch.inference_mode():
            plain = model.generate(**enc, **kwargs)
            seen.clear()
            shared = generate_ids(model, enc["input_ids"], enc["attention_mask"], **kwargs)
    finally:
        hook.remove()
    width = enc["input_ids"].shape[1]
    assert torch.equal(plain[:, width:], shared[:, width:])
    rows = [ids[m.bool()] for ids, m in zip(enc["input_ids"], enc["attention_mask"])]
    p = shared_prefix(rows)
    assert p >= 64  # the system prompt and the two worked examples
    # one pass over the prefix (one row), then one over every row's own tokens, then one token at a time
    assert seen[0] == (1, p) and seen[1] == (len(questions), width - p)


def test_plain_generate_where_sharing_does_not_apply(smollm2):
    model, tokenizer = smollm2
    enc = tokenizer(["Hello there", "Why is the sky blue?"], return_tensors="pt", padding=True, padding_side="left")
    calls = []
    real = type(model).generate

    def spy(self, **kwargs):
        calls.append(sorted(kwargs))
        return real(self, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(model), "generate", spy)
        generate_ids(model, enc["input_ids"], enc["attention_mask"], max_new_tokens=2, do_sample=False,
                     pad_token_id=tokenizer.pad_token_id)  # no shared prefix worth a pass
    assert calls and "past_key_values" not in calls[0]


def _trainer(**kw):
    args = SimpleNamespace(use_transformers_paged=False)
    base = dict(use_vllm=False, vllm_mode="colocate", is_deepspeed_enabled=False, is_fsdp_enabled=False, args=args,
                model=SimpleNamespace())
    return SimpleNamespace(**{**base, **kw})


def test_rollouts_share_the_prefix_except_where_every_forward_is_a_collective():
    from medix.train.rollout import generation_context

    model = SimpleNamespace()
    with generation_context(_trainer(model=model), None):
        assert model.generate.func is generate_ids  # TRL's `unwrapped_model.generate(...)` lands here
    assert not hasattr(model, "generate")  # back to the class's method afterwards
    for sharded in ({"is_deepspeed_enabled": True}, {"is_fsdp_enabled": True}, {"use_vllm": True}):
        assert isinstance(generation_context(_trainer(**sharded), None), contextlib.nullcontext)
