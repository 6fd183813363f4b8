"""Rewards: one table of components (`table.COMPONENTS`: name, scorer, weight, inside or outside the format
bracket, text-only or not), the scorers (`components.py`), the composite with its one TRL reward function
(`composite.py`), `medix reward score` (`score_file.py`) and the EasyR1 / verl adapters (`engines.py`).

Each component is a `components.Scorer` over one `components.Batch`; only the composite calls them. TRL gets
the composite as one reward function, `overall` (`trl_reward_functions`), and logs each component as a metric.
"""

from medix.rewards.composite import CompositeReward, RewardResult, trl_reward_functions

__all__ = ["CompositeReward", "RewardResult", "trl_reward_functions"]
