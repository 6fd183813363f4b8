"""The composite reward as ONE TRL reward function, `overall`, with weight 1, plus a metric per component.

    funcs, weights = trl_reward_functions(load_reward_config())
    GRPOConfig(..., reward_weights=weights); GRPOTrainer(..., reward_funcs=funcs)

TRL trains on `overall` itself (`composite.CompositeReward.score`: every table component, each completion
parsed once, the judge's requests overlapped with the embedding pass) and logs it as `reward` and
`rewards/overall/mean`. A sample without an overall (on_judge_error=skip_group and a failed verdict) returns
None: TRL marks it unscorable and the medix trainer leaves its whole group out (`train/sampling.py`).

Each table component is logged through TRL's `log_metric` as `rewards/<name>/mean` (the mean over the
completions it applies to, as EasyR1 logs every key of its score dict), and judge failures as
`judge_error_rate`, under every policy. The function is synchronous: the composite's one hand-off onto the
judge's loop is where it waits, and TRL calls it on its own thread.
"""

from __future__ import annotations

from medix.config import RewardConfig
from medix.rewards import composite as reward
from medix.rewards.common import Batch
from medix.rewards.composite import CompositeReward, RewardResult

REWARD_WEIGHTS = [1.0]  # TRL's reward_weights for [overall]: the component weights are inside overall


class OverallReward:
    """TRL reward function: the composite overall of each completion (None: no overall, see skip_group)."""

    __name__ = "overall"

    def __init__(self, composite: CompositeReward):
        self.composite = composite
        self.last: list[RewardResult] = []  # this process's results of the batch scored last (trainer, monitor)

    def __call__(self, completions: list, solution: list[str], problem: list[str] | None = None, log_metric=None,
                 **columns) -> list[float | None]:
        batch = Batch.from_trl(completions, solution, problem, columns, self.composite.config)
        self.last = self.composite.score_batch(batch)
        if log_metric is not None:
            for name, value in component_metrics(self.last):
                log_metric(name, value)
        return [r.overall for r in self.last]


def component_metrics(results: list[RewardResult]) -> list[tuple[str, float]]:
    """(metric, value) per completion and component where it has a value, and per completion for
    judge_error_rate. One value per completion, so TRL's average of a metric (sum / count over every process)
    is the mean over the global batch, as for TRL's own per-function metrics."""
    out = [(f"rewards/{name}/mean", r.values[name]) for name in reward.names() for r in results
           if r.values.get(name) is not None]
    return out + [("judge_error_rate", float(r.judge_error is not None)) for r in results]


def trl_reward_functions(config: RewardConfig | None = None, judge=None) -> tuple[list, list[float]]:
    """([overall], [1.0]); `funcs[0].composite` is the CompositeReward (its judge can be reused, and must be
    closed)."""
    return [OverallReward(CompositeReward(config or RewardConfig(), judge=judge))], list(REWARD_WEIGHTS)
