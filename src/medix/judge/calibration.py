"""Out-of-sample calibration of a judge's P(YES): `medix judge audit --calibrate`.

The pairs are split into k folds by item (`Pair.group`: every pair built from one benchmark item lands in the
same fold, so a threshold is never read on a sibling of a pair it was fitted on). Each method is fitted on
k-1 folds and applied to the held-out one; the figures are those of the out-of-fold verdicts, printed beside
the in-sample ones (fitted and read on every pair).

Methods (each a monotone map of P(YES), then YES iff the calibrated value > 0.5):
  threshold  YES iff P(YES) > t, t the best-accuracy cut of the training folds (ties: the stricter);
  platt      logistic regression on logit(P(YES)) (Platt scaling);
  isotonic   the pool-adjacent-violators fit of label on P(YES).
A monotone map keeps the ranking, so each of them is again one threshold on P(YES): they can differ only in
where the fit puts it, and in the calibrated probability they give (what a continuous reward would use).
`per-kind threshold` fits one threshold per kind of pair: an upper bound that needs the kind at judging
time, which free text does not carry, so it is reported and never shipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

METHODS = ("threshold", "platt", "isotonic")
_EPS = 1e-6


@dataclass(frozen=True)
class Calibrator:
    method: str
    threshold: float  # YES iff P(YES) > threshold: the calibrator's verdict rule on the raw probability
    params: tuple = ()

    def yes(self, p: np.ndarray) -> np.ndarray:
        return p > self.threshold

    def probability(self, p: np.ndarray) -> np.ndarray:
        """The calibrated P(YES)."""
        if self.method == "platt":
            a, b = self.params
            return _sigmoid(a * _logit(p) + b)
        if self.method == "isotonic":
            xs, ys = self.params
            return np.asarray(ys)[np.clip(np.searchsorted(xs, p, side="right") - 1, 0, len(xs) - 1)]
        return p


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -500, 500)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties half."""
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def rates(labels: np.ndarray, yes: np.ndarray) -> dict:
    tp, fp = int((yes & labels).sum()), int((yes & ~labels).sum())
    positives, negatives = int(labels.sum()), int((~labels).sum())
    return {"accuracy": float((yes == labels).mean()) if len(labels) else None,
            "tpr": tp / positives if positives else None, "fpr": fp / negatives if negatives else None,
            "fnr": (positives - tp) / positives if positives else None,  # false NO: a right answer refused
            "n": int(len(labels)), "positives": positives, "negatives": negatives}


def best_threshold(labels: np.ndarray, p: np.ndarray) -> float:
    """The cut t (YES iff p > t) with the best accuracy; ties go to the stricter (higher) cut."""
    cuts = np.unique(np.concatenate([[0.0], p, [1.0]]))
    order = np.argsort(p)
    sorted_p, sorted_labels = p[order], labels[order]
    # YES iff p > t: correct = positives above t + negatives at or below t
    neg_at_or_below = np.cumsum(~sorted_labels)
    pos_total = labels.sum()
    pos_at_or_below = np.cumsum(sorted_labels)
    index = np.searchsorted(sorted_p, cuts, side="right") - 1
    neg_below = np.where(index >= 0, neg_at_or_below[np.maximum(index, 0)], 0)
    pos_below = np.where(index >= 0, pos_at_or_below[np.maximum(index, 0)], 0)
    correct = (pos_total - pos_below) + neg_below
    best = np.flatnonzero(correct == correct.max())[-1]
    return float(cuts[best])


def fit(method: str, labels: np.ndarray, p: np.ndarray) -> Calibrator:
    if method == "threshold":
        return Calibrator("threshold", best_threshold(labels, p))
    if method == "platt":
        a, b = _platt(labels, p)
        # a·logit(p) + b > 0  ⇔  p > sigmoid(-b / a) for a > 0; a ≤ 0 (no signal): all NO
        t = float(_sigmoid(np.array(-b / a))) if a > 0 else 1.0
        return Calibrator("platt", t, (a, b))
    if method == "isotonic":
        xs, ys = _isotonic(labels, p)
        above = np.flatnonzero(ys > 0.5)
        t = float(np.nextafter(xs[above[0]], -1)) if len(above) else 1.0  # YES from the first block above 0.5
        return Calibrator("isotonic", min(max(t, 0.0), 1.0), (xs, ys))
    raise ValueError(f"unknown calibration method {method!r}")


def _platt(labels: np.ndarray, p: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Logistic regression of label on logit(p) by Newton's method, with Platt's smoothed targets."""
    x = _logit(p)
    positives, negatives = labels.sum(), (~labels).sum()
    target = np.where(labels, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    a, b = 1.0, 0.0
    for _ in range(iterations):
        q = _sigmoid(a * x + b)
        w = q * (1 - q) + 1e-12
        gradient = np.array([((q - target) * x).sum(), (q - target).sum()])
        hessian = np.array([[(w * x * x).sum(), (w * x).sum()], [(w * x).sum(), w.sum()]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return float(a), float(b)


def _isotonic(labels: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool adjacent violators: block starts (in P(YES)) and the non-decreasing share of positives per block."""
    order = np.argsort(p, kind="stable")
    xs, ys = p[order], labels[order].astype(float)
    starts, values, weights = [], [], []
    for x, y in zip(xs, ys):
        if starts and x == starts[-1]:  # equal probabilities share one block
            values[-1], weights[-1] = (values[-1] * weights[-1] + y) / (weights[-1] + 1), weights[-1] + 1
        else:
            starts.append(x), values.append(y), weights.append(1.0)
        while len(values) > 1 and values[-2] > values[-1]:
            w = weights[-2] + weights[-1]
            values[-2] = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w
            weights[-2] = w
            del starts[-1], values[-1], weights[-1]
    return np.array(starts), np.array(values)


def folds(groups: list[str], k: int, seed: int = 0) -> np.ndarray:
    """The fold (0..k-1) of each pair: groups are hashed with the seed, so an item's pairs share a fold and the
    split does not depend on the order of the pairs."""
    def bucket(group: str) -> int:
        return int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()[:12], 16)
    unique = sorted(set(groups), key=bucket)
    fold_of = {g: i % k for i, g in enumerate(unique)}
    return np.array([fold_of[g] for g in groups])


def summarise(labels: np.ndarray, yes: np.ndarray, kinds: np.ndarray, sources: np.ndarray) -> dict:
    return {**rates(labels, yes),
            "by_kind": {k: rates(labels[kinds == k], yes[kinds == k]) for k in sorted(set(kinds))},
            "by_source": {s: rates(labels[sources == s], yes[sources == s]) for s in sorted(set(sources))}}


def cross_validate(labels: np.ndarray, p: np.ndarray, groups: list[str], kinds: list[str], sources: list[str],
                   k: int = 5, seed: int = 0, current: float | None = None) -> dict:
    """In-sample and k-fold out-of-sample figures of every method (and of the judge's `current` threshold, which
    was fitted elsewhere and so is out of sample here); `chosen` is the method with the best out-of-sample
    accuracy, refitted on all pairs: its threshold is the one `--calibrate` writes."""
    kinds_a, sources_a = np.array(kinds), np.array(sources)
    fold = folds(groups, k, seed)
    usable = len(set(fold)) >= 2 and labels.any() and (~labels).any()
    out: dict = {"folds": int(len(set(fold))), "split": "by item (all pairs of one item in one fold)", "methods": {}}
    if current is not None:
        out["current"] = {"threshold": current, **summarise(labels, p > current, kinds_a, sources_a)}
    for method in (*METHODS, "per-kind threshold"):
        oof = np.zeros(len(p), dtype=bool)
        thresholds = []
        for f in sorted(set(fold)) if usable else []:
            train, test = fold != f, fold == f
            if not labels[train].any() or labels[train].all():
                oof[test] = p[test] > 0.5
                continue
            if method == "per-kind threshold":
                for kind in set(kinds_a[test]):
                    tr, te = train & (kinds_a == kind), test & (kinds_a == kind)
                    t = best_threshold(labels[tr], p[tr]) if tr.any() else best_threshold(labels[train], p[train])
                    oof[te] = p[te] > t
                continue
            model = fit(method, labels[train], p[train])
            thresholds.append(model.threshold)
            oof[test] = model.yes(p[test])
        entry: dict = {"out_of_sample": summarise(labels, oof, kinds_a, sources_a) if usable else None}
        if method != "per-kind threshold":
            model = fit(method, labels, p)
            entry["threshold"] = model.threshold
            entry["fold_thresholds"] = thresholds
            entry["in_sample"] = summarise(labels, model.yes(p), kinds_a, sources_a)
            entry["brier_in_sample"] = float(np.mean((model.probability(p) - labels) ** 2))
        out["methods"][method] = entry
    if usable:
        best = max(METHODS, key=lambda m: (out["methods"][m]["out_of_sample"]["accuracy"], m == "threshold"))
        out["chosen"] = {"method": best, "threshold": out["methods"][best]["threshold"]}
    return out


def reliability(labels: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Per P(YES) bin: its range, the pairs in it, their mean P(YES) and the share that are positive."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(mask.sum()),
                        "mean_p_yes": float(p[mask].mean()), "positive_share": float(labels[mask].mean())})
    return out
