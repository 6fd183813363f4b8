"""Embedding accuracy: cosine similarity of the predicted and the reference answer.

1 iff cosine >= threshold (paper: 0.8 with MedEmbed-large-v0.1); `embed_continuous` gives max(0, cos).
A whole batch is encoded in ONE call over its distinct texts (a GRPO group repeats its reference); samples the
guard decided (`Batch.guards`) take the guard's value and are not encoded.
"""

from __future__ import annotations

import numpy as np

from medix.config import RewardConfig
from medix.models import load_embedder
from medix.rewards.common import Batch, Column, Scorer


class EmbeddingScorer(Scorer):
    def __init__(self, config: RewardConfig, judge=None):
        super().__init__(config)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            cfg = self.config.embedder
            self._model = load_embedder(cfg.model, cfg.device)
        return self._model

    def similarities(self, answers: list[str], references: list[str]) -> list[float]:
        """Cosine similarity per pair, from one encode call."""
        if not answers:
            return []
        texts = list(dict.fromkeys([*answers, *references]))
        index = {t: i for i, t in enumerate(texts)}
        vectors = self.model.encode(texts, batch_size=self.config.embedder.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        a = vectors[[index[t] for t in answers]]  # (n, dim), unit length
        b = vectors[[index[t] for t in references]]
        return np.einsum("nd,nd->n", a, b).astype(float).tolist()

    def value(self, similarity: float) -> float:
        if self.config.embed_continuous:
            return max(0.0, similarity)
        return float(similarity >= self.config.embed_threshold)

    def __call__(self, batch: Batch) -> Column:
        """accuracy_embed per sample, with the cosine behind it as the `similarity` detail (None: guard decided)."""
        values = [value for value, _ in batch.guards]
        similarity: list[float | None] = [None] * len(values)
        todo = batch.unguarded()
        sims = self.similarities([batch.answers[i] for i in todo], [batch.references[i] for i in todo])
        for i, sim in zip(todo, sims):
            values[i], similarity[i] = self.value(sim), sim
        return Column(values, details={"similarity": similarity})
