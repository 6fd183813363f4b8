"""Agreement and preference statistics of a human review, in numpy: Wilson intervals, Cohen's κ, Fleiss' κ,
Krippendorff's α (nominal and ordinal).

    wilson(81, 263)                                   # (0.2553, 0.3662): Newcombe (1998), Table I
    cohen_kappa(["y", "y", "n"], ["y", "n", "n"])     # two raters, the same items
    fleiss_kappa(counts)                              # (items, categories) counts, the same number of raters per item
    krippendorff_alpha(units, order=None)             # units: {unit: [value, ...]}; any raters, missing values allowed

Every function returns None where the statistic is undefined (no items, or a single category everywhere: the
chance agreement is 1 and κ is 0 / 0). Tests check each against the worked examples of its authors.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Sequence

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95% by default); None for n = 0. Unlike p ± z·se it stays in
    [0, 1] and keeps its coverage with few reviews or a proportion near 0 or 1."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _kappa(observed: float, expected: float) -> float | None:
    return None if math.isclose(expected, 1.0) else (observed - expected) / (1 - expected)


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's κ of two raters who labelled the same items (first[i] and second[i] are item i's labels)."""
    if len(first) != len(second):
        raise ValueError(f"cohen_kappa: {len(first)} labels against {len(second)}")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    left, right = Counter(first), Counter(second)
    expected = sum(left[c] * right[c] for c in left) / (n * n)
    return _kappa(observed, expected)


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' κ (1971) from an (items, categories) table of how many raters put each item in each category;
    every item must have the same number of ratings (at least two), not necessarily by the same raters."""
    counts = np.asarray(counts, dtype=float)  # (N, k)
    if counts.ndim != 2 or counts.shape[0] == 0:
        return None
    raters = counts.sum(axis=1)
    if not np.allclose(raters, raters[0]) or raters[0] < 2:
        raise ValueError("fleiss_kappa: every item needs the same number of ratings, at least two")
    m = raters[0]
    per_item = ((counts * counts).sum(axis=1) - m) / (m * (m - 1))  # P_i: agreeing rater pairs of item i
    shares = counts.sum(axis=0) / counts.sum()  # p_j
    return _kappa(float(per_item.mean()), float((shares * shares).sum()))


def krippendorff_alpha(units: dict[Hashable, Sequence[Hashable]], order: Sequence[Hashable] | None = None
                       ) -> float | None:
    """Krippendorff's α over `units` (unit → the values its raters gave; missing ratings simply absent).
    Nominal without `order`; ordinal with `order`, the categories from lowest to highest (Krippendorff's rank
    metric). Units with fewer than two values are not pairable and are left out, as the definition says."""
    pairable = [list(values) for values in units.values() if len(values) >= 2]
    categories = list(order) if order is not None else sorted({v for vs in pairable for v in vs}, key=str)
    index = {c: i for i, c in enumerate(categories)}
    unknown = {v for vs in pairable for v in vs} - set(index)
    if unknown:
        raise ValueError(f"krippendorff_alpha: values {sorted(unknown, key=str)} are not in the order {categories}")
    coincidences = np.zeros((len(categories), len(categories)))  # o_ck
    for values in pairable:
        counts = np.bincount([index[v] for v in values], minlength=len(categories)).astype(float)
        coincidences += (np.outer(counts, counts) - np.diag(counts)) / (len(values) - 1)
    totals = coincidences.sum(axis=1)  # n_c
    n = totals.sum()
    if n == 0:
        return None
    delta = _ordinal_delta(totals) if order is not None else 1.0 - np.eye(len(categories))
    expected = (np.outer(totals, totals) * delta).sum()
    if expected == 0:
        return None
    return float(1.0 - (n - 1) * (coincidences * delta).sum() / expected)


def _ordinal_delta(totals: np.ndarray) -> np.ndarray:
    """δ²(c, k) = (Σ_{g=c..k} n_g − (n_c + n_k) / 2)², the ordinal metric on the categories' marginals."""
    k = len(totals)
    cumulative = np.concatenate([[0.0], np.cumsum(totals)])
    delta = np.zeros((k, k))
    for c in range(k):
        for d in range(c, k):
            delta[c, d] = delta[d, c] = (cumulative[d + 1] - cumulative[c] - (totals[c] + totals[d]) / 2) ** 2
    return delta
