"""Modality reward: 1 iff the text before the think block is exactly the reference's tag
(case-insensitive, whitespace inside the brackets tolerated).

None (not applicable) when the reference has no tag; on a sample without an image the composite switches it
off unless `text_only_modality` is set (its table row says it does not apply to text-only samples), and
renormalises the other weights.
"""

from __future__ import annotations

from medix.rewards.common import Batch, Column, Scorer


class ModalityScorer(Scorer):
    def __call__(self, batch: Batch) -> Column:
        return Column([None if tag is None else float(p.modality == tag) for p, tag in zip(batch.parsed, batch.tags)])
