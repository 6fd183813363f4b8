"""The embedded models for real: SmolLM2-135M as the `local` judge, all-MiniLM-L6-v2 as the embedder."""

import math
import warnings

import pytest
import torch

from medix.judge.config import JudgeConfig
from medix.rewards.config import RewardConfig
from medix.judge import Judge, JudgeRequest
from medix.rewards.components import EmbeddingScorer

PAIRS = [("Pneumothorax", "Pleural effusion"), ("Vitamin C", "Ascorbic acid"), ("Radial nerve", "Ulnar nerve"),
         ("Acute appendicitis", "Inflamed appendix"), ("Left kidney", "Right kidney")]


@pytest.fixture(scope="module")
def local_judge(tmp_path_factory):
    config = JudgeConfig(dtype="float32", backend="local", batch_size=2,
                         cache_path=str(tmp_path_factory.mktemp("c") / "v.sqlite"),
                         shared_prefix=False)  # the plain path; shared prefixes are tested below
    with Judge(config) as judge:
        yield judge


def test_local_verdict_is_one_forward_pass_per_batch(local_judge):
    model = local_judge.backend.model
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        verdicts = local_judge.judge([JudgeRequest(c, r) for c, r in PAIRS])
    finally:
        handle.remove()
    assert len(calls) == math.ceil(len(PAIRS) / 2)  # batch_size=2, no generation steps
    for v in verdicts:
        assert v.score in (0.0, 1.0) and v.raw is None  # a logit verdict writes no text; P(YES) is typed
        assert 0.0 < v.p_yes < 1.0 and v.score == float(v.p_yes > 0.5)
    assert local_judge.identity["method"] == "logits"


def test_local_batched_equals_single(local_judge):
    backend = local_judge.backend
    prompts = [local_judge.render(JudgeRequest(c, r)) for c, r in PAIRS]
    batched = backend.p_yes(prompts)
    single = [backend.p_yes([p])[0] for p in prompts]
    assert batched == pytest.approx(single, abs=2e-3)  # left padding keeps the last position aligned


def test_local_verdicts_are_cached(local_judge):
    requests = [JudgeRequest("Osteosarcoma", "Ewing sarcoma")]
    first = local_judge.judge(requests)
    second = local_judge.judge(requests)
    assert second[0].cached and second[0].score == first[0].score


def test_embedder_similarity_and_one_encode_call():
    reward = EmbeddingScorer(RewardConfig())
    calls = []
    original = reward.model.encode
    reward.model.encode = lambda texts, **kw: (calls.append(len(texts)), original(texts, **kw))[1]
    sims = reward.similarities(["Pneumothorax", "Right upper lobe pneumonia", "Fractured femur"],
                               ["pneumothorax", "Pneumonia in the right upper lobe", "Vitamin C deficiency"])
    assert len(calls) == 1 and calls[0] == 6
    assert sims[0] > 0.95 and sims[1] > 0.8 and sims[2] < 0.3
    continuous = EmbeddingScorer(RewardConfig(embed_continuous=True))
    assert continuous.value(0.42) == 0.42 and continuous.value(-0.2) == 0.0
    assert reward.value(0.79) == 0.0 and reward.value(0.8) == 1.0


GROUPS = [("Which nerve is injured in a midshaft humerus fracture?", "Radial nerve",
           ["radial nerve", "Ulnar nerve", "The radial nerve is injured.", "median", "axillary nerve"]),
          ("Most likely diagnosis?", "Tension pneumothorax",
           ["tension pneumothorax", "Pleural effusion", "pneumonia", "Pneumothorax under tension", "asthma"])]


def test_shared_prefix_verdicts_equal_the_unshared_ones():
    """GRPO-shaped batches (5 answers per question): one prefix pass per group, same P(YES) within 1e-4."""
    from medix.judge.local_backend import LocalBackend
    from medix.judge.prompts import ONE_TURN, Prompts

    prompts = Prompts(ONE_TURN)
    texts = [prompts.render(JudgeRequest(c, r, q)) for q, r, answers in GROUPS for c in answers]
    plain = LocalBackend(JudgeConfig(dtype="float32", shared_prefix=False, batch_size=16))
    shared = LocalBackend(JudgeConfig(dtype="float32", shared_prefix=True, batch_size=5))
    calls = []
    handle = shared.model.register_forward_hook(lambda module, args, kwargs, out: calls.append(
        kwargs["input_ids"].shape), with_kwargs=True)
    try:
        p_shared = shared.p_yes(texts)
    finally:
        handle.remove()
    assert p_shared == pytest.approx(plain.p_yes(texts), abs=1e-4)
    # per group: one pass over the shared prefix (batch 1), one over the 5 suffixes
    assert [c[0] for c in calls] == [1, 5, 1, 5]
    prefix_len, suffix_len = calls[0][1], calls[1][1]
    assert prefix_len > 3 * suffix_len  # the candidate comes last, so most of each prompt is shared


def test_shared_prefix_in_bfloat16_keeps_the_verdicts():
    """The runtime dtype on a CPU with native bf16: the prefix pass and the plain batched pass round differently
    (bf16 keeps 8 bits of mantissa), so P(YES) agrees only loosely; the float32 tests above pin the algorithm."""
    from medix.judge.local_backend import LocalBackend
    from medix.judge.prompts import ONE_TURN, Prompts

    prompts = Prompts(ONE_TURN)
    texts = [prompts.render(JudgeRequest(c, r, q)) for q, r, answers in GROUPS for c in answers]
    plain = LocalBackend(JudgeConfig(dtype="bfloat16", shared_prefix=False, batch_size=16))
    shared = LocalBackend(JudgeConfig(dtype="bfloat16", shared_prefix=True, batch_size=5))
    assert shared.model.dtype == torch.bfloat16
    p_plain, p_shared = plain.p_yes(texts), shared.p_yes(texts)
    assert p_shared == pytest.approx(p_plain, abs=0.05)
    # a verdict flips only where P(YES) is within that rounding of the cut-off
    assert all((a > 0.5) == (b > 0.5) for a, b in zip(p_shared, p_plain) if abs(b - 0.5) > 0.05)


@pytest.mark.slow  # three conversations of the 1.5B judge, round by round
@pytest.mark.parametrize("protocol", ["medix", "paper", "rewritten history"])
def test_conversation_caches_across_rounds_give_the_batched_logits(protocol):
    """3-round conversations (two questions x 5 answers, binary and rubric): the CPU path that keeps each
    conversation's key/value cache across rounds reads the same next-token logits as one batched pass over
    every whole history per round, and runs far fewer tokens. "rewritten history": the chat template renders
    a past reply differently from how the open turn ended (as thinking templates do), so a later round is
    not an extension of the previous one and the cache must be cut back to the common tokens."""
    from medix.judge.local_backend import LocalBackend
    from medix.judge.prompts import CONVERSATION_TEMPLATES, PAPER_TEMPLATES, Prompts

    prompts = Prompts(PAPER_TEMPLATES if protocol == "paper" else CONVERSATION_TEMPLATES)
    conversations = [prompts.conversation(JudgeRequest(c, r, q, kind=kind))
                     for kind in ("binary", "rubric") for q, r, answers in GROUPS for c in answers]
    results = {}
    for shared in (False, True):
        backend = LocalBackend(JudgeConfig(dtype="float32", shared_prefix=shared, batch_size=5))
        if protocol == "rewritten history":
            render = backend.render
            backend.render = lambda convs, reply_prefix="": [
                text.replace("<|im_start|>assistant\n", "<|im_start|>assistant\nReply: ")
                if text.count("<|im_start|>assistant") > 1 else text for text in render(convs, reply_prefix)]
        seen, tokens = {}, []  # (conversation, round) -> logits
        reply = backend._reply
        index = {id(c): i for i, c in enumerate(conversations)}

        def record(c, logits, json_score):
            rounds = [k for k in seen if k[0] == index[id(c)]]
            seen[index[id(c)], len(rounds)] = logits
            return reply(c, logits, json_score)

        backend._reply = record
        handle = backend.model.register_forward_hook(lambda module, args, kwargs, out: tokens.append(
            kwargs["input_ids"].numel()), with_kwargs=True)
        try:
            verdicts = backend.conversation_verdicts(conversations, 3)
        finally:
            handle.remove()
        results[shared] = (verdicts, torch.stack([seen[k] for k in sorted(seen)]), sum(tokens))
    (plain, batched, plain_tokens), (cached, cached_logits, cached_tokens) = results[False], results[True]
    assert [v.rounds for v in cached] == [v.rounds for v in plain] and all(len(v.rounds) == 3 for v in cached)
    assert len(cached_logits) == len(batched) == 3 * len(conversations)
    assert backend.yes_probability(cached_logits).tolist() == pytest.approx(
        backend.yes_probability(batched).tolist(), abs=1e-4)
    digits = backend.digit_ids
    assert torch.allclose(cached_logits[:, digits].softmax(-1), batched[:, digits].softmax(-1), atol=1e-4)
    assert cached_tokens * 2 < plain_tokens


def test_the_local_judge_raises_no_future_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        with Judge(JudgeConfig(backend="local", cache=False)) as judge:
            verdicts = judge.judge([JudgeRequest(candidate=c, reference="pneumonia") for c in ("pneumonia", "edema")])
            (talk,) = judge.converse([JudgeRequest(candidate="pneumonia", reference="pneumonia", question="q")], 2,
                                     protocol="paper")
    assert all(v.ok for v in verdicts) and talk.ok and len(talk.rounds) == 2
