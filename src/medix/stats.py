"""The statistics evaluation and training both report: percentile bootstrap means and their 95% interval.

    replicates = bootstrap_means(values, 1000, np.random.default_rng(0))
    interval(replicates)     # [low, high], rounded to 6 places; None without replicates

Used by `eval/score.py` (task and group intervals), `eval/compare.py` (paired differences) and `train/demo.py`
(the reward change before / after training).
"""

from __future__ import annotations

import numpy as np


def bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples,) means of `values` resampled with replacement."""
    if resamples == 0 or len(values) == 0:
        return np.empty(0)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))  # (B, n)
    return values[idx].mean(axis=1)


def interval(replicates: np.ndarray) -> list[float] | None:
    """The 2.5th and 97.5th percentiles of `replicates`; None when there are none."""
    if replicates.size == 0:
        return None
    low, high = np.percentile(replicates, [2.5, 97.5])
    return [round(float(low), 6), round(float(high), 6)]
