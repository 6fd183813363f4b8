"""Rewards: one module per component, the composite, and adapters for TRL / EasyR1 / verl.

Every component follows TRL's contract `fn(completions, **dataset_columns) -> list[float | None]`
(None = not applicable to that sample) and carries a `__name__`, which TRL logs as the metric name.
"""

from medix.rewards.composite import CompositeReward, RewardResult
from medix.rewards.embedding import EmbeddingReward
from medix.rewards.format import FormatReward
from medix.rewards.llm_judge import LLMJudgeReward
from medix.rewards.modality import ModalityReward

__all__ = ["CompositeReward", "RewardResult", "EmbeddingReward", "FormatReward", "LLMJudgeReward", "ModalityReward"]
