"""The statistics evaluation and training both report: percentile bootstrap means and their 95% interval.

    replicates = bootstrap_means(values, 1000, np.random.default_rng(0))
    interval(replicates)     # [low, high], rounded to 6 places; None without replicates

Used by `eval/score.py` (task and group intervals), `eval/compare.py` (paired differences), `train/demo.py`
(the reward change before / after training) and `train/ablation.py` (each arm against the composite arm):
`paired_change`.
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


def paired_change(before: list[dict], after: list[dict], names: list[str], resamples: int = 1000,
                  seed: int = 0) -> dict:
    """{name: {"delta", "interval", "n"}}: the mean per-item change after − before of each field in `names`,
    with its 95% paired bootstrap interval (the same items scored twice, `before[i]` and `after[i]`: resampling
    items keeps each pair together). A pair where either side lacks the field is left out; a field no pair has
    is left out. An interval that contains 0 means the change is within noise."""
    change = {}
    for name in names:
        pairs = [(b.get(name), a.get(name)) for b, a in zip(before, after)]
        diffs = np.array([a - b for b, a in pairs if a is not None and b is not None], dtype=float)
        if diffs.size:
            replicates = bootstrap_means(diffs, resamples, np.random.default_rng(seed))
            change[name] = {"delta": round(float(diffs.mean()), 6), "interval": interval(replicates),
                            "n": int(diffs.size)}
    return change
