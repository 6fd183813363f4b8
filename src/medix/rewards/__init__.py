"""Rewards: one table of components (`composite.COMPONENTS`: name, scorer, weight, inside or outside the format
bracket, text-only or not), one module per component, the composite, and adapters for TRL / EasyR1 / verl.

Each component is a `common.Scorer` over one `common.Batch`; only the composite calls them. TRL gets the
composite as one reward function, `overall` (`for_trl.py`), and logs each component as a metric.
"""

from medix.rewards.composite import CompositeReward, RewardResult

__all__ = ["CompositeReward", "RewardResult"]
