"""Embedding accuracy: cosine similarity of the predicted and the reference answer.

1 iff cosine >= threshold (paper: 0.8 with MedEmbed-large-v0.1); `embed_continuous` gives max(0, cos).
A whole batch is encoded in ONE call over its distinct texts (a GRPO group repeats its reference).
"""

from __future__ import annotations

import numpy as np

from medix.config import RewardConfig
from medix.data.response import parse_response
from medix.models import load_embedder
from medix.rewards.common import completion_text, guard, reference_answer


class EmbeddingReward:
    __name__ = "accuracy_embed"

    def __init__(self, config: RewardConfig | None = None):
        self.config = config or RewardConfig()
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

    def score_answers(self, answers: list[str | None], references: list[str]) -> list[tuple[float, float | None]]:
        """(accuracy_embed, cosine or None when a guard decided) per pair."""
        decided = [guard(a, r, self.config.max_answer_chars)[0] for a, r in zip(answers, references)]
        todo = [i for i, d in enumerate(decided) if d is None]
        sims = self.similarities([answers[i] for i in todo], [references[i] for i in todo])
        out: list[tuple[float, float | None]] = [(d, None) for d in decided]
        for i, sim in zip(todo, sims):
            out[i] = (self.value(sim), sim)
        return out

    def __call__(self, completions: list, solution: list[str], **kwargs) -> list[float]:
        tags = self.config.think_tags
        answers = [parse_response(completion_text(c), tags).answer for c in completions]
        return [v for v, _ in self.score_answers(answers, [reference_answer(s) for s in solution])]
