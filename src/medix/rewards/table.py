"""THE table of reward components: one row each, read by every view of the reward — the weight fields of
`RewardWeights` and their checks (`rewards/config.py`), the formula and results (`composite.py`), the TRL
metrics, the `medix reward score` table, the EasyR1 / verl dicts and the reward-hacking monitor.

    from medix.rewards.table import COMPONENTS
    COMPONENTS["format"].in_bracket        # False: outside (1 − w_format)·(…), at its own weight
    [c.weight for c in COMPONENTS.values()] # ['judge', 'embed', 'modality', 'format']: RewardWeights' fields

A new component is a `components.Scorer` and a row here: its weight field (with default and description)
appears in `RewardWeights`, in the configs, the formula and every table without another edit.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from medix.registry import Registry


@dataclass(frozen=True)
class Component:
    name: str  # the result field, the metric rewards/<name>/mean, the adapters' key
    scorer: str | type  # a components.Scorer ("module:Class", imported on first use), built with (RewardConfig, judge)
    weight: str  # its field in RewardWeights (reward.weights.<weight> in a config)
    default: float  # the paper's weight
    description: str  # the field's description (`medix train --help-config`, docs)
    in_bracket: bool  # inside (1 − w_outside)·(…) and renormalised; False: outside, at its own weight (format)
    text_only: bool  # applies to samples without an image (False: only with reward.text_only_modality)
    label: str  # the column header of `medix reward score`

    def build(self, config, judge):
        """This component's scorer for `config` (a RewardConfig) and `judge`."""
        cls = self.scorer
        if isinstance(cls, str):
            module, _, name = cls.partition(":")
            cls = getattr(importlib.import_module(module), name)
        return cls(config, judge)


COMPONENTS: Registry[Component] = Registry("reward component", add="a Scorer in rewards/components.py and a row "
                                           "in rewards/table.py")

# Scorers run in this order: the judge first, so its requests are in flight during the embedding pass. The
# order is also the summation order of `combine` (the paper's formula, left to right).
for _row in (
    Component("accuracy_llm", "medix.rewards.components:LLMJudgeScorer", "judge", 0.575,
              "w_j: LLM-judge accuracy.", in_bracket=True, text_only=True, label="llm"),
    Component("accuracy_embed", "medix.rewards.components:EmbeddingScorer", "embed", 0.375,
              "w_e: embedding-similarity accuracy.", in_bracket=True, text_only=True, label="embed"),
    Component("modality", "medix.rewards.components:ModalityScorer", "modality", 0.05,
              "w_m: modality-tag match.", in_bracket=True, text_only=False, label="modality"),
    Component("format", "medix.rewards.components:FormatScorer", "format", 0.1,
              "w_f: weight of the format reward (outside the bracket).", in_bracket=False, text_only=True,
              label="format"),
):
    COMPONENTS.register(_row.name, _row)


def names() -> list[str]:
    return list(COMPONENTS)
