"""One reward semantics in training: what TRL trains on is `CompositeReward.score(...)[i].overall`, under
every `on_judge_error` policy, with a judge that fails 20% of requests (scripted completions, tiny model)."""

import math

import pytest
import torch
from helpers.scripted_run import question, record, scripted_run, train
from trl.trainer.utils import nanstd

from medix.testing.stub_server import JudgeStub

NAN = float("nan")

# Every answer but the exact one goes to the judge; the stub says YES when "radial nerve" is inside.
ANSWERS = ["radial nerve palsy", "the radial nerve", "ulnar nerve", "median nerve", "Radial nerve",
           "posterior interosseous nerve", "radial nerve injury at the spiral groove", "axillary nerve"]


def writer(prompt: str, k: int) -> str:
    return f"<think>wrist drop</think> <answer>{ANSWERS[(3 * question(prompt) + k) % len(ANSWERS)]}</answer>"


def group_advantages(rewards: list[float], skipped: bool) -> list[float]:
    """TRL's GRPO advantage with scale_rewards=group, from TRL's own NaN-aware std (Bessel-corrected):
    (r - nanmean) / (nanstd + 1e-4), unscorable (NaN) rows 0; a skipped group all 0."""
    if skipped:
        return [0.0] * len(rewards)
    r = torch.tensor(rewards, dtype=torch.float32)
    return torch.nan_to_num((r - torch.nanmean(r)) / (nanstd(r) + 1e-4), nan=0.0).tolist()


def test_group_advantages_match_a_hand_worked_group():
    # 1, 1, 0, 0: mean 0.5, Bessel std sqrt(1/3) = 0.57735 → ±0.5 / 0.57745 = ±0.865875
    assert group_advantages([1.0, 1.0, 0.0, 0.0], False) == pytest.approx([0.865875] * 2 + [-0.865875] * 2, abs=1e-5)
    # 0.9, NaN, 0.3, 0.6: mean 0.6, std sqrt((0.09 + 0 + 0.09) / 2) = 0.3 → (±0.3, 0) / 0.3001 = ±0.99967
    assert group_advantages([0.9, NAN, 0.3, 0.6], False) == pytest.approx([0.99967, 0.0, -0.99967, 0.0], abs=1e-5)
    assert group_advantages([0.9, NAN, 0.3, 0.6], True) == [0.0] * 4


@pytest.mark.parametrize("policy", ["renormalize", "zero", "skip_group"])
def test_trained_reward_is_the_composite_overall_with_a_failing_judge(tmp_path, policy):
    rounds = {"results": [], "rewards_per_func": [], "batch": []}
    with JudgeStub(fail_500=0.5, seed=11) as stub:  # the one-turn prompt has no question: fewer distinct prompts
        run = scripted_run(tmp_path, stub.url, writer, 12, f"reward.on_judge_error={policy}")
        record(run.trainer.reward_funcs[0].composite, "score_batch", rounds["results"])
        record(run.trainer, "_calculate_rewards", rounds["rewards_per_func"])
        record(run.trainer, "_score_round", rounds["batch"])
        train(run)
    weights = run.trainer.reward_weights
    failures = skipped_groups = trained_groups = 0
    for results, rpf, batch in zip(rounds["results"], rounds["rewards_per_func"], rounds["batch"], strict=True):
        # What TRL trains on: its weighted nansum of the reward functions; NaN where all are None.
        trl = [float("nan") if all(math.isnan(v) for v in row) else sum(w * v for w, v in zip(weights.tolist(), row)
                                                                          if not math.isnan(v)) for row in rpf.tolist()]
        overall = [float("nan") if r.overall is None else r.overall for r in results]
        assert trl == pytest.approx(overall, nan_ok=True)
        failures += sum(r.judge_error is not None for r in results)
        for g in range(0, len(overall), 4):
            group = overall[g:g + 4]
            skip = policy == "skip_group" and any(math.isnan(r) for r in group)
            skipped_groups += skip
            trained_groups += not skip
            assert batch["advantages"][g:g + 4].tolist() == pytest.approx(group_advantages(group, skip), abs=1e-4)
            assert (batch["completion_mask"][g:g + 4].sum() == 0) == skip  # no loss tokens for a skipped group
        if policy == "zero":
            assert all(r.overall is not None and r.weights["accuracy_llm"] > 0 for r in results)
    assert failures > 0 and trained_groups > 0, "the stub must fail on some requests and not on others"
    if policy == "skip_group":
        assert skipped_groups > 0
    history = [h for h in run.trainer.state.log_history if "loss" in h]
    assert history[0]["judge_error_rate"] > 0
    assert history[0]["judge/skipped_groups"] == (0 if policy != "skip_group" else pytest.approx(
        skipped_groups / len(rounds["batch"])))
