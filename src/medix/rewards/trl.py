"""The composite reward as TRL reward functions: one callable per component plus `reward_weights`.

    funcs, weights = trl_reward_functions(load_reward_config())
    GRPOConfig(..., reward_weights=weights); GRPOTrainer(..., reward_funcs=funcs)

TRL then logs `rewards/accuracy_llm/mean`, `…/std` etc. per step, and its weighted sum equals the
composite overall: weights are ((1−w_f)·w_j, (1−w_f)·w_e, (1−w_f)·w_m, w_f). On samples where modality
does not apply (text-only), the two accuracy components are scaled by (w_j+w_e+w_m)/(w_j+w_e) — the
renormalisation of the composite — so the sum is still the composite overall. A failed judge verdict
is None (TRL skips it in the sum) and shows up as `judge_error_rate`.
"""

from __future__ import annotations

from medix.config import RewardConfig
from medix.rewards.common import sample_has_image
from medix.rewards.embedding import EmbeddingReward
from medix.rewards.format import FormatReward
from medix.rewards.llm_judge import LLMJudgeReward
from medix.rewards.modality import ModalityReward


class _TextOnlyScale:
    """Per-sample factor for the accuracy components: (w_j+w_e+w_m)/(w_j+w_e) where modality does not apply."""

    def __init__(self, config: RewardConfig):
        w = config.weights
        self.modality = ModalityReward(config.think_tags, config.text_only_modality)
        content = w.judge + w.embed
        self.scale = (content + w.modality) / content if content > 0 and w.modality > 0 else 1.0

    def __call__(self, solution: list[str], kwargs: dict) -> list[float]:
        return [1.0 if self.modality.applies(s, sample_has_image(kwargs, i)) else self.scale
                for i, s in enumerate(solution)]


class _ScaledEmbedding(EmbeddingReward):
    def __init__(self, config: RewardConfig):
        super().__init__(config)
        self.factors = _TextOnlyScale(self.config)

    def __call__(self, completions, solution, **kwargs):
        values = super().__call__(completions, solution, **kwargs)
        return [v * f for v, f in zip(values, self.factors(solution, kwargs))]


class _ScaledJudge(LLMJudgeReward):
    def __init__(self, config: RewardConfig, judge=None):
        super().__init__(config, judge=judge)
        self.factors = _TextOnlyScale(self.config)

    async def __call__(self, completions, solution, **kwargs):
        values = await super().__call__(completions, solution, **kwargs)
        return [None if v is None else v * f for v, f in zip(values, self.factors(solution, kwargs))]


def trl_reward_functions(config: RewardConfig | None = None, judge=None) -> tuple[list, list[float]]:
    """([accuracy_llm, accuracy_embed, modality, format], their TRL reward_weights)."""
    config = config or RewardConfig()
    w = config.weights
    funcs = [
        _ScaledJudge(config, judge=judge),
        _ScaledEmbedding(config),
        ModalityReward(config.think_tags, config.text_only_modality),
        FormatReward(config.think_tags),
    ]
    return funcs, trl_weights(w)


def trl_weights(w) -> list[float]:
    """TRL reward_weights for [accuracy_llm, accuracy_embed, modality, format]."""
    content = 1 - w.format
    return [content * w.judge, content * w.embed, content * w.modality, w.format]
