"""Format reward: 1 iff, from the first think tag on, the response is one think block, optional
whitespace, one answer block, then only whitespace (the MediX-R1 rule). Text before the think block
(the modality tag) is judged by the modality reward, not here."""

from __future__ import annotations

from medix.rewards.common import Batch, Column, Scorer


class FormatScorer(Scorer):
    def __call__(self, batch: Batch) -> Column:
        return Column([float(p.well_formed) for p in batch.parsed])
