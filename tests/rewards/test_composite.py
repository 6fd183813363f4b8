"""Weights, renormalisation, judge-failure modes, and the engine adapters (TRL, EasyR1, verl)."""

import math

import pytest

from medix.judge.config import JudgeConfig
from medix.rewards.config import RewardConfig, RewardWeights, load_reward_config
from medix.errors import MedixError
from medix.rewards.composite import CompositeReward, combine, sample_weights
from medix.rewards.composite import trl_reward_functions
from medix.testing.stub_server import JudgeStub

RESP = ["<X_RAY><think>r</think><answer>{}</answer>".format(a) for a in
        ("Pneumothorax", "Left tension pneumothorax", "Effusion", "Vitamin C", "YES")]
SOLS = ["<X_RAY> Pneumothorax", "<X_RAY> Pneumothorax", "<CT_SCAN> Pneumothorax", "Vitamin C", "<X_RAY> Fracture"]
IMAGES = [["a.png"], ["a.png"], ["a.png"], [], ["a.png"]]


FAILED = None  # the judge's verdict failed after its retries


@pytest.mark.parametrize("policy,fmt,mod,llm,emb,expected", [
    ("renormalize", 1, 1, 1, 1, 1.0),
    ("renormalize", 0, 0, 0, 0, 0.0),
    ("renormalize", 1, 0, 0, 0, 0.1),
    ("renormalize", 0, 1, 1, 0, 0.9 * (0.575 + 0.05)),
    ("renormalize", 1, None, 1, 0, 0.9 * 0.575 / 0.95 + 0.1),  # text-only: modality off, content renormalised
    ("renormalize", 1, 1, FAILED, 1, 0.9 * (0.375 + 0.05) / 0.425 + 0.1),  # judge dropped, the rest scaled up
    ("renormalize", 1, None, FAILED, 1, 1.0),  # only embed left of the content: it carries all 0.9
    ("zero", 1, 1, FAILED, 1, 0.9 * (0.375 + 0.05) + 0.1),  # official: a failed verdict is a 0 at full weight
    ("zero", 1, None, FAILED, 1, 0.9 * 0.375 / 0.95 + 0.1),  # text-only still renormalises modality away
    ("zero", 1, 1, 1, 1, 1.0),
    ("skip_group", 1, 1, FAILED, 1, None),  # no overall: training leaves the group out
    ("skip_group", 1, None, 1, 0, 0.9 * 0.575 / 0.95 + 0.1),  # a verdict that did not fail is untouched
])
def test_combine_per_judge_error_policy(policy, fmt, mod, llm, emb, expected):
    cfg = RewardConfig(on_judge_error=policy)
    values = {"accuracy_llm": llm, "accuracy_embed": emb, "modality": mod, "format": fmt}
    weights = sample_weights(cfg, values, failed={"accuracy_llm"} if llm is FAILED else set())
    overall = combine(weights, values)
    assert overall == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("old", ["null", None])
def test_old_null_policy_is_a_clear_config_error(old):
    with pytest.raises(ValueError, match="'null' was replaced: use 'skip_group'"):
        RewardConfig(on_judge_error=old)


def test_weights_validation_and_yaml(tmp_path):
    with pytest.raises(ValueError, match="must be > 0"):
        RewardWeights(judge=0, embed=0, modality=0)
    bad = tmp_path / "r.yaml"
    bad.write_text("reward:\n  weights:\n    format: 2\n  judgee: {}\n")
    with pytest.raises(MedixError) as err:
        load_reward_config(bad)
    assert "weights.format" in str(err.value) and "judgee: unknown key" in str(err.value)
    good = tmp_path / "g.yaml"
    good.write_text("embed_threshold: 0.7\njudge:\n  backend: openai\n")
    cfg = load_reward_config(good, profile="paper")
    assert cfg.embed_threshold == 0.7 and cfg.judge.model == "Qwen/Qwen3-4B-Instruct-2507"
    assert cfg.embedder.model == "abhinand/MedEmbed-large-v0.1"
    with pytest.raises(MedixError, match="unknown profile"):
        load_reward_config(None, profile="gpu")


def _config(url, **kw):
    return RewardConfig(judge=JudgeConfig(backend="openai", model="stub", base_urls=[url], cache=False), **kw)


def test_trl_function_is_the_composite_overall(stub_url):
    config = _config(stub_url)
    funcs, weights = trl_reward_functions(config)
    assert [f.__name__ for f in funcs] == ["overall"] and weights == [1.0]
    completions = [[{"role": "assistant", "content": r}] for r in RESP]  # conversational format
    kwargs = {"solution": SOLS, "images": IMAGES, "problem": ["q"] * 5}
    metrics = []
    totals = funcs[0](completions, log_metric=lambda name, value: metrics.append((name, value)), **kwargs)
    composite = CompositeReward(config)
    try:
        results = composite.score(RESP, SOLS, has_image=[bool(i) for i in IMAGES])
        expected = [r.overall for r in results]
    finally:
        composite.close()
    assert totals == pytest.approx(expected)
    # and both equal the formula worked by hand (stub judge: YES iff the reference is inside the answer)
    results = funcs[0].last
    embed1 = results[1].accuracy_embed  # the embedder's call on "Left tension pneumothorax" (a model)
    assert [results[i].accuracy_embed for i in (0, 2, 3, 4)] == [1.0, 0.0, 1.0, 0.0]  # exact, unrelated, exact, guarded
    assert totals == pytest.approx([
        1.0,  # exact match: 0.9·(0.575 + 0.375 + 0.05) + 0.1
        0.1 + 0.9 * (0.575 + 0.375 * embed1 + 0.05),  # judge YES, modality right
        0.1,  # "Effusion" for a CT pneumothorax: wrong tag, judge NO, embed 0 → format only
        1.0,  # text-only exact match: 0.9·(0.575 + 0.375)/0.95 + 0.1 (modality renormalised away)
        0.145,  # "YES": the verdict-word guard zeroes both accuracies → 0.1 + 0.9·0.05
    ])
    assert [v for name, v in metrics if name == "judge_error_rate"] == [0.0] * 5
    assert len([v for name, v in metrics if name == "rewards/modality/mean"]) == 4  # off on the text-only row
    assert funcs[0].last[3].modality is None
    funcs[0].composite.close()


def test_judge_failure_is_never_a_silent_zero(tmp_path):
    with JudgeStub(fail_500=1.0) as stub:
        judge = JudgeConfig(backend="openai", model="stub", base_urls=[stub.url], cache=False, max_retries=0)
        for mode in ("skip_group", "renormalize", "zero"):
            cfg = RewardConfig(judge=judge, on_judge_error=mode)
            composite = CompositeReward(cfg)
            try:
                results = composite.score(RESP[:3], SOLS[:3])
            finally:
                composite.close()
            exact, judged = results[0], results[1]
            assert exact.judge_error is None and exact.overall == 1.0  # exact match never needs the judge
            assert judged.accuracy_llm is None and "500" in judged.judge_error  # the record keeps the failure
            assert (judged.format, judged.modality) == (1, 1) and judged.accuracy_embed in (0.0, 1.0)
            expected = FAILED_VERDICT_OVERALL[mode][int(judged.accuracy_embed)]
            assert judged.overall == (None if expected is None else pytest.approx(expected, abs=1e-9))


# overall = 0.9 · (0.575·judge + 0.375·embed + 0.05·modality) + 0.1·format (MediX-R1), for a sample with
# format 1, modality 1, a failed verdict and embed 0 or 1, worked by hand:
FAILED_VERDICT_OVERALL = {
    # judge term dropped, embed + modality scaled to the content total: 0.1 + 0.9·(0.375e + 0.05)/0.425
    "renormalize": {0: 0.1 + 0.9 * 0.05 / 0.425,  # = 0.1 + 0.105882... = 0.205882...
                    1: 1.0},  # 0.1 + 0.9·0.425/0.425
    # the verdict counts 0 at full weight: 0.1 + 0.9·(0.375e + 0.05)
    "zero": {0: 0.145,  # 0.1 + 0.9·0.05
             1: 0.4825},  # 0.1 + 0.9·0.425 = 0.1 + 0.3825
    "skip_group": {0: None, 1: None},  # no overall: training leaves the group out
}


def _recording(composite, calls):
    """Record every `CompositeReward.score` result list the adapter's composite produces."""
    score = composite.score

    def recorded(*args, **kwargs):
        calls.append(score(*args, **kwargs))
        return calls[-1]

    composite.score = recorded


@pytest.mark.parametrize("policy", ["renormalize", "zero", "skip_group"])
def test_engine_adapters_return_the_composite_overall_with_a_failing_judge(monkeypatch, tmp_path, policy):
    """EasyR1 and verl get exactly `CompositeReward.score(...)[i].overall` per completion under each
    on_judge_error policy, with the loopback judge failing 20% of requests; skip_group is refused there."""
    from medix.rewards import engines

    responses = [f"<X_RAY><think>r</think><answer>{a}</answer>" for a in
                 ("left pneumothorax", "pneumothorax, small", "tension pneumothorax", "right pneumothorax",
                  "pneumothorax on the left", "pneumothorax likely", "apical pneumothorax", "no pneumothorax",
                  "effusion", "fracture of rib", "Pneumothorax")]
    solutions = ["<X_RAY> Pneumothorax"] * len(responses)
    with JudgeStub(fail_500=0.2, seed=5) as stub:
        cfg = tmp_path / "reward.yaml"
        cfg.write_text(f"judge: {{backend: openai, model: stub, cache: false, max_retries: 0, "
                       f"base_urls: ['{stub.url}']}}\non_judge_error: {policy}\n")
        monkeypatch.setenv("MEDIX_REWARD_CONFIG", str(cfg))
        engines._composite.cache_clear()
        if policy == "skip_group":
            with pytest.raises(MedixError, match="skip_group needs the medix trainer"):
                engines.easyr1_compute_score([{"response": responses[0], "ground_truth": solutions[0]}])
            return
        calls = []
        _recording(engines._composite(None), calls)  # EasyR1 without format_weight and verl: one composite
        easy = engines.easyr1_compute_score([{"response": r, "ground_truth": s} for r, s in zip(responses, solutions)])
        verl = engines.verl_compute_score_batch(["medix"] * len(responses), responses, solutions)
        one = engines.verl_compute_score("medix", responses[0], solutions[0])
        engines._composite.cache_clear()
    assert len(calls) == 3
    for out, results in zip((easy, verl, [one]), calls):
        assert [d["overall"] for d in out] == pytest.approx([r.overall for r in results])
        assert all(isinstance(v, float) and not math.isnan(v) for d in out for v in d.values())
        assert [d["judge_error"] for d in out] == [float(r.judge_error is not None) for r in results]
    failed = [r for r in calls[0] + calls[1] if r.judge_error]
    assert failed and len(failed) < len(calls[0]) + len(calls[1]) - 2  # the judge failed on some, not all
    if policy == "zero":
        assert all(r.weights["accuracy_llm"] == pytest.approx(0.9 * 0.575) for r in failed)


def test_engine_adapters(monkeypatch, tmp_path, stub_url):
    from medix.rewards import engines

    cfg = tmp_path / "reward.yaml"
    cfg.write_text(f"judge:\n  backend: openai\n  model: stub\n  cache: false\n  base_urls: ['{stub_url}']\n")
    monkeypatch.setenv("MEDIX_REWARD_CONFIG", str(cfg))
    engines._composite.cache_clear()
    easy = engines.easyr1_compute_score([{"response": r, "ground_truth": s, "response_length": 9}
                                         for r, s in zip(RESP, SOLS)], format_weight=0.2)
    assert len(easy) == 5 and easy[0]["overall"] == 1.0
    assert all(isinstance(v, float) and not math.isnan(v) for d in easy for v in d.values())
    assert easy[4]["accuracy_llm"] == 0.0 and easy[4]["overall"] == pytest.approx(0.2 + 0.8 * 0.05)
    one = engines.verl_compute_score("medix", RESP[1], SOLS[1], extra_info={"split": "train"})
    assert one["score"] == one["overall"] and one["accuracy_llm"] == 1.0
    engines._composite.cache_clear()


def test_easyr1_keeps_the_configs_format_weight_unless_given(monkeypatch, tmp_path, stub_url):
    """EasyR1 passes `format_weight` only when its reward_function_kwargs name it: otherwise the config's."""
    from medix.rewards import engines

    cfg = tmp_path / "reward.yaml"
    cfg.write_text(f"weights: {{format: 0.3}}\njudge: {{backend: openai, model: stub, cache: false, "
                   f"base_urls: ['{stub_url}']}}\n")
    monkeypatch.setenv("MEDIX_REWARD_CONFIG", str(cfg))
    engines._composite.cache_clear()
    try:
        inputs = [{"response": RESP[4], "ground_truth": SOLS[4]}]  # well formed, right modality, wrong answer
        (kept,) = engines.easyr1_compute_score(inputs)
        (given,) = engines.easyr1_compute_score(inputs, format_weight=0.2)
    finally:
        engines._composite.cache_clear()
    assert kept["accuracy_llm"] == 0.0 and kept["modality"] == 1.0
    assert kept["overall"] == pytest.approx(0.3 + 0.7 * 0.05)  # format 0.3; modality 0.05 of the content 0.7
    assert given["overall"] == pytest.approx(0.2 + 0.8 * 0.05)


def test_shipped_example_config_loads():
    from helpers import REPO

    cfg = load_reward_config(REPO / "examples" / "reward-openai.yaml", profile="paper")
    assert cfg.judge.backend == "openai" and cfg.judge.base_urls == ["http://127.0.0.1:8000/v1"]
