"""Entry points for other RL engines. Both read the reward config from MEDIX_REWARD_CONFIG (a YAML
file, optional) and MEDIX_PROFILE (`local` default, or `paper`).

EasyR1 (batch reward):
    worker.reward.reward_type=batch
    worker.reward.reward_function=$(python -c "import medix.rewards.engines as m; print(m.__file__)"):easyr1_compute_score
verl (custom reward function; use the batch one with reward_model.reward_manager=batch):
    custom_reward_function.path=<same file>  custom_reward_function.name=verl_compute_score

`on_judge_error` from the config applies (`renormalize` or `zero`; `skip_group` is refused, see `_composite`),
so each sample's `overall` is exactly what `CompositeReward.score` and the TRL function give it.
"""  # noqa: E501 (the EasyR1 reward_function line above is one shell word, to copy as is)

from __future__ import annotations

import os
from functools import lru_cache

from medix.rewards.config import load_reward_config
from medix.errors import MedixError
from medix.rewards import composite as reward
from medix.rewards.composite import CompositeReward, RewardResult


@lru_cache(maxsize=4)
def _composite(format_weight: float | None) -> CompositeReward:
    """One composite per format weight (None: the config's), judge and embedder built once per process;
    callers pass the weight positionally, so the cache key is the same for every caller."""
    config = load_reward_config(os.environ.get("MEDIX_REWARD_CONFIG"), os.environ.get("MEDIX_PROFILE", "local"))
    if format_weight is not None:
        config.weights.format = format_weight
    if config.on_judge_error == "skip_group":
        # A reward function sees samples, not groups, and must return a number for each: it cannot leave a
        # group out of the update. The failure stays visible in the `judge_error` metric either way.
        raise MedixError("on_judge_error: skip_group needs the medix trainer (it drops whole prompt groups); "
                         "EasyR1 / verl reward functions must return a number: use 'renormalize' or 'zero'")
    return CompositeReward(config)


def _as_floats(r: RewardResult) -> dict[str, float]:
    """The composite's own overall (the same number `CompositeReward.score` and the TRL function give) and
    every table component; failed or inapplicable components are reported as 0.0 here, with `judge_error`
    flagging the failure."""
    values = {name: float(r.values[name] if r.values[name] is not None else 0.0) for name in reward.names()}
    overall = 0.0 if r.overall is None else float(r.overall)  # None: no weighted component left (judge failed)
    return {"overall": overall, **values, "judge_error": float(r.judge_error is not None)}


def easyr1_compute_score(reward_inputs: list[dict], format_weight: float | None = None) -> list[dict[str, float]]:
    """EasyR1 batch contract: inputs carry `response` and `ground_truth` ("<TAG> answer"). `format_weight`
    (EasyR1's `reward_function_kwargs`), when given, replaces the config's format weight; else the config's."""
    composite = _composite(format_weight)
    results = composite.score([x["response"] for x in reward_inputs], [x["ground_truth"] for x in reward_inputs])
    return [_as_floats(r) for r in results]


def verl_compute_score(data_source, solution_str: str, ground_truth: str, extra_info=None) -> dict[str, float]:
    """verl per-sample contract; returns `score` plus each component as extra metrics."""
    return verl_compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info])[0]


def verl_compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos=None) -> list[dict[str, float]]:
    """verl BatchRewardManager contract: lists in, one dict per sample out (judge calls concurrent)."""
    results = _composite(None).score(list(solution_strs), list(ground_truths))  # EasyR1's own key: one composite
    return [{"score": d["overall"], **d} for d in map(_as_floats, results)]
