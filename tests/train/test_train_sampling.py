"""Dynamic sampling: the filter rule, exactly which groups are trained, exhaustion, and exact resume."""

import json

import pytest
import torch

from helpers.scripted_run import question, record, scripted_run, train
from helpers.servers import reply_server, user_text
from medix.errors import MedixError
from medix.testing.stub_server import stub_reply
from medix.train.sampling import keep_mask, zero_std

NAN = float("nan")


@pytest.mark.parametrize("rewards,min_std,kept,flat", [
    ([0.0, 0.0, 0.0, 0.0], 0.0, False, True),  # all wrong: mean 0 <= 0.01
    ([1.0, 1.0, 1.0, 1.0], 0.0, False, True),  # all right: mean 1 >= 0.99
    ([0.01, 0.01, 0.01, 0.01], 0.0, False, True),  # the bounds are strict
    ([0.0, 0.0, 0.0, 0.04], 0.0, False, False),  # mean 0.01: dropped although it varies
    ([0.5, 0.5, 0.5, 0.5], 0.0, True, True),  # the official rule keeps a flat mid group...
    ([0.5, 0.5, 0.5, 0.5], 1e-6, False, True),  # ...min_std drops it
    ([0.2, 0.6, 0.2, 0.6], 0.1, True, False),  # std 0.23 >= 0.1
    ([0.2, 0.3, 0.2, 0.3], 0.1, False, False),  # std 0.058 < 0.1
    ([0.3, NAN, 0.5, NAN], 0.0, True, False),  # unscorable rows are left out of mean and std
])
def test_keep_mask_rule(rewards, min_std, kept, flat):
    overall = torch.tensor(rewards + [0.5, 0.0, 0.5, 0.0])  # a second, always-kept group after it
    assert keep_mask(overall, 4, 0.01, 0.99, min_std).tolist() == [kept] * 4 + [True] * 4
    assert zero_std(overall, 4).tolist()[:4] == [flat] * 4


# Scripted prompt classes (row number → how all four answers look) and what the filter must do with them.
GOOD, HIGH, LOW, FLAT = "good", "high", "low", "flat"
CLASSES = [GOOD, HIGH, LOW, FLAT, GOOD, HIGH, GOOD, LOW]
EXACT, NO_ANSWER = "<think>x</think> <answer>Radial nerve</answer>", "<think>x</think>"


def writer(prompt: str, k: int) -> str:
    kind = CLASSES[question(prompt)]
    if kind == GOOD:  # rewards 1, 1, 0, 0: mean 0.5
        return EXACT if k < 2 else NO_ANSWER
    if kind == FLAT:  # four equal mid rewards (format only, or format + embed): zero variance
        return "<think>x</think> <answer>ulnar nerve</answer>"
    return EXACT if kind == HIGH else NO_ANSWER  # all 1 (mean >= 0.99) / all 0 (mean <= 0.01)


# Whether each class passes the filter (low 0.01, high 0.99), worked by hand from its four rewards:
# GOOD 1, 1, 0, 0: mean 0.5, std sqrt(1/3) = 0.577 → kept under both min_std values; HIGH 1, 1, 1, 1: mean 1
# >= 0.99 → dropped; LOW 0, 0, 0, 0: mean 0 <= 0.01 → dropped; FLAT x, x, x, x with 0 < x < 1: kept by the
# official rule, dropped by any min_std > 0 (std 0).
KEPT = {0.0: {GOOD: True, HIGH: False, LOW: False, FLAT: True},
        1e-6: {GOOD: True, HIGH: False, LOW: False, FLAT: False}}
# TRL's GRPO advantage with scale_rewards=group, (r - group mean) / (group std + 1e-4) with Bessel's std, for
# a GOOD group's rewards 1, 1, 0, 0: ±0.5 / (sqrt(1/3) + 1e-4) = ±0.5 / 0.57745 = ±0.865875
GOOD_ADVANTAGES = [0.865875, 0.865875, -0.865875, -0.865875]


def expected_step(rounds: list[list[str]], min_std: float, need: int = 2) -> dict:
    """The filter written out on the groups generated in one step, in generation order."""
    passes = [i for r in rounds for i in r if KEPT[min_std][CLASSES[int(i[1:])]]]
    fails = [i for r in rounds for i in r if i not in passes]
    return {"trained": (passes + fails)[:need], "kept": len(passes), "dropped": len(fails),
            "zero_std_kept": sum(CLASSES[int(i[1:])] == FLAT for i in passes),
            "resampled": need * (len(rounds) - 1), "filled": max(0, need - len(passes))}


@pytest.mark.parametrize("min_std", [0.0, 1e-6])
def test_drop_and_refill_trains_exactly_the_passing_groups(tmp_path, stub, min_std):
    run = scripted_run(tmp_path, stub.url, writer, 8, "trainer.max_steps=4",
                       "algorithm.dynamic_sampling.max_attempts=3", f"algorithm.dynamic_sampling.min_std={min_std}")
    generated, batches = [], []
    record(run.trainer, "_score_round", generated, inputs=True)
    record(run.trainer, "_generate_and_score_completions", batches)
    train(run)
    logged = [json.loads(line) for line in (tmp_path / "run" / "dynamic_sampling.jsonl").open()]
    metrics = [h for h in run.trainer.state.log_history if "loss" in h]
    rounds = iter([rows[i]["id"] for i in range(0, len(rows), 4)] for rows in generated)
    totals = {"dropped": 0, "resampled": 0, "filled": 0}
    for step, line, metric, batch in zip((1, 2, 3, 4), logged, metrics, batches, strict=True):
        step_rounds = [next(rounds) for _ in range(line["rounds"])]
        expected = expected_step(step_rounds, min_std)
        # the loop stops at the first round that fills the batch, or after max_attempts
        full_after = next((n for n in range(1, 4) if expected_step(step_rounds[:n], min_std)["kept"] >= 2), 3)
        assert line["rounds"] == full_after
        assert {k: line[k] for k in expected} == {**expected, "trained": expected["trained"]}, f"step {step}"
        assert {k: metric[f"dynamic_sampling/{k}"] for k in expected if k != "trained"} == \
            {k: float(v) for k, v in expected.items() if k != "trained"}
        filled_rows = 4 * expected["filled"]
        assert batch["advantages"][8 - filled_rows:].abs().sum() == 0  # padding teaches nothing
        if expected["filled"] < 2:
            assert batch["advantages"][:8 - filled_rows].abs().sum() > 0  # a trained group has a signal
        for g, group_id in enumerate(expected["trained"][:2 - expected["filled"]]):  # the kept groups, in order
            if CLASSES[int(group_id[1:])] == GOOD:
                assert batch["advantages"][4 * g:4 * g + 4].tolist() == pytest.approx(GOOD_ADVANTAGES, abs=1e-5)
        totals = {k: totals[k] + expected[k] for k in totals}
    assert next(rounds, None) is None  # every generated round was accounted for
    assert totals["dropped"] > 0 and totals["resampled"] > 0, "the scripted data must exercise the filter"


def test_exhausted_attempts_stop_with_the_numbers_or_pad(tmp_path, stub):
    def varied(prompt, k):
        return EXACT if k < 2 else NO_ANSWER  # rewards 1, 1, 0, 0: mean 0.5, dropped with high=0.5

    extra = ("algorithm.dynamic_sampling.max_attempts=2", "algorithm.dynamic_sampling.high=0.5")
    run = scripted_run(tmp_path, stub.url, varied, 4, *extra, "algorithm.dynamic_sampling.on_exhausted=error")
    with pytest.raises(MedixError, match=r"after 2 generation rounds .* only 0 of the 2 prompt groups .*"
                                         r"inside \(0.01, 0.5\).*kept 0, dropped 4.*on_exhausted=pad"):
        train(run)
    run = scripted_run(tmp_path, stub.url, varied, 4, *extra, output="pad")
    batches = []
    record(run.trainer, "_generate_and_score_completions", batches)
    train(run)
    line = json.loads((tmp_path / "pad" / "dynamic_sampling.jsonl").read_text())
    assert (line["kept"], line["dropped"], line["resampled"], line["filled"]) == (0, 4, 2, 2)
    assert batches[0]["advantages"].abs().sum() == 0  # the dropped groups vary, yet padding teaches nothing


@pytest.mark.slow
def test_resume_with_dynamic_sampling_trains_the_same_prompts(tmp_path, stub):
    """4 steps straight vs the same run resumed from its step-2 checkpoint: the same trained prompt ids and
    counts at steps 3 and 4, refills included."""
    extra = ("trainer.max_steps=4", "trainer.save_steps=2", "algorithm.dynamic_sampling.max_attempts=3")
    straight = scripted_run(tmp_path, stub.url, writer, 8, *extra, output="a")
    train(straight)
    checkpoint = tmp_path / "a" / "checkpoint-2"
    assert (checkpoint / "dynamic_sampling_rng_0.json").is_file()
    resumed = scripted_run(tmp_path, stub.url, writer, 8, *extra, output="b")
    try:
        resumed.trainer.train(resume_from_checkpoint=str(checkpoint))
    finally:
        resumed.trainer.reward_funcs[0].composite.close()
    a = [json.loads(line) for line in (tmp_path / "a" / "dynamic_sampling.jsonl").open()]
    b = [json.loads(line) for line in (tmp_path / "b" / "dynamic_sampling.jsonl").open()]
    assert [x["step"] for x in a] == [1, 2, 3, 4] and [x["step"] for x in b] == [3, 4]
    assert b == a[2:]
    # the reward-hacking monitor's answer-length baseline is resumed too
    assert (checkpoint / "reward_monitor.json").is_file() and len(straight.trainer.monitor.baseline) == 4
    assert resumed.trainer.monitor.baseline == straight.trainer.monitor.baseline
    assert sum(x["resampled"] for x in b) > 0, "the resumed steps must refill for the test to mean anything"


EXACT, NO_ANSWER = "<think>x</think> <answer>Radial nerve</answer>", "<think>x</think>"


BROKEN = "<think>x</think> <answer>JUDGEFAILS nerve</answer>"  # the judge answers HTTP 500 for this one


FAILING_ROWS = {0, 2, 5}  # the other rows are all-or-nothing groups (1, 1, 0, 0): mean 0.5, kept


def failing_judge_writer(prompt: str, k: int) -> str:
    """Rows in FAILING_ROWS: exact, exact, no answer, and one the judge fails on — scorable rewards
    1, 1, 0 (mean 2/3, inside (0.01, 0.99)) plus a failed verdict; other rows: 1, 1, 0, 0. The exact answer
    and the missing one never reach the judge (exact match; format bracket), so only BROKEN does."""
    if k < 2:
        return EXACT
    return BROKEN if k == 3 and question(prompt) in FAILING_ROWS else NO_ANSWER


def test_a_group_with_a_failed_verdict_is_dropped_by_dynamic_sampling(tmp_path):
    judge = reply_server(lambda body: None if "JUDGEFAILS" in user_text(body) else stub_reply(body["messages"]))
    with judge:
        run = scripted_run(tmp_path, judge.url, failing_judge_writer, 8, "reward.on_judge_error=skip_group",
                           "trainer.max_steps=3", "algorithm.dynamic_sampling.max_attempts=3")
        generated, batches = [], []
        record(run.trainer, "_score_round", generated, inputs=True)
        record(run.trainer, "_generate_and_score_completions", batches)
        train(run)
    logged = [json.loads(line) for line in (tmp_path / "run" / "dynamic_sampling.jsonl").open()]
    rounds = iter([rows[i]["id"] for i in range(0, len(rows), 4)] for rows in generated)
    failing_seen = 0
    for line, batch in zip(logged, batches, strict=True):
        ids = [i for _ in range(line["rounds"]) for i in next(rounds)]  # groups generated this step, in order
        passes = [i for i in ids if int(i[1:]) not in FAILING_ROWS]
        fails = [i for i in ids if int(i[1:]) in FAILING_ROWS]
        failing_seen += len(fails)
        assert (line["kept"], line["dropped"]) == (len(passes), len(fails)), line
        assert line["trained"] == (passes + fails)[:2]  # kept groups first; a failing one only as padding
        assert line["filled"] == max(0, 2 - len(passes))
        padded = 4 * line["filled"]
        assert batch["advantages"][8 - padded:].abs().sum() == 0  # a padding group teaches nothing
    assert next(rounds, None) is None
    assert failing_seen > 0, "the sampled prompts must include a group with a failed verdict"
