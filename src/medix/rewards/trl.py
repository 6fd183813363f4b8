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


def _text_only_factors(config: RewardConfig, solution: list[str], kwargs: dict) -> list[float]:
    w = config.weights
    modality = ModalityReward(config.think_tags, config.text_only_modality)
    scale = (w.judge + w.embed + w.modality) / (w.judge + w.embed) if w.judge + w.embed > 0 else 1.0
    return [1.0 if modality.applies(s, sample_has_image(kwargs, i)) or w.modality == 0 else scale
            for i, s in enumerate(solution)]


class _ScaledEmbedding(EmbeddingReward):
    def __call__(self, completions, solution, **kwargs):
        values = super().__call__(completions, solution, **kwargs)
        return [v * f for v, f in zip(values, _text_only_factors(self.config, solution, kwargs))]


class _ScaledJudge(LLMJudgeReward):
    async def __call__(self, completions, solution, **kwargs):
        values = await super().__call__(completions, solution, **kwargs)
        factors = _text_only_factors(self.config, solution, kwargs)
        return [None if v is None else v * f for v, f in zip(values, factors)]


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
