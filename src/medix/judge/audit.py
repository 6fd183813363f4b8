"""Measure a judge before trusting it: `medix judge audit`.

    medix judge audit --sample --n 200 --json audit.json          # the embedded judge on the bundled items
    medix judge audit --judge-backend openai --judge-model Qwen/Qwen3-4B-Instruct-2507 --data-dir benchmarks
    medix judge audit --pairs my_pairs.jsonl --calibrate judge.yaml

Labelled (reference, candidate, label) pairs come from benchmark items, built without any model, in kinds
(medix.judge.pairs: MCQ options and their surface forms; sentences: answer frames, negations, yes/no with an
explanation, laterality and location swaps, numbers, synonyms), or from a user's JSONL file. Reports
accuracy, TPR, false-YES and false-NO rates per kind and per category, AUC where the judge gives P(YES), a
reliability table, the thresholds in sample and out of sample (k folds by item: medix.judge.calibration),
how often rounds 2-3 of the evaluation conversation flip round 1, and a ROC + reliability plot. The result
is cached per judge identity (`judge/audit_store.py`), so `medix train`, `medix reward score` and `medix eval run`
can warn about a judge that measured badly, and the judge line of every run names the kinds it was measured on.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from medix.judge.config import JudgeConfig
from medix.errors import MedixError
from medix.judge.calibration import cross_validate, rates, reliability, roc_auc, summarise
from medix.judge.core import Judge
from medix.judge.identity import identity_key, one_turn_identity
from medix.judge.pairs import Pair, pairs_from_file, pairs_from_items  # noqa: F401  (the audit's inputs)
from medix.judge.types import JudgeRequest


def thresholds(labels: np.ndarray, p: np.ndarray) -> dict:
    """The threshold (YES iff p > t) with the best accuracy, and the most permissive one with FPR ≤ 5%."""
    candidates = np.unique(np.concatenate([[0.0], p, [1.0]]))
    best, safe = None, None
    for t in candidates:
        r = rates(labels, p > t)
        if best is None or r["accuracy"] >= best["accuracy"]:  # ties: the stricter threshold
            best = {"threshold": float(t), **r}
        if r["fpr"] is not None and r["fpr"] <= 0.05 and (safe is None or (r["tpr"] or 0) > (safe["tpr"] or 0)):
            safe = {"threshold": float(t), **r}
    return {"best_accuracy": best, "fpr_at_most_5pct": safe}


def run_audit(judge: Judge, pairs: list[Pair], rounds: int = 3, rounds_n: int | None = None,
              progress: Callable[[str, int, int], None] | None = None, folds: int = 5) -> dict:
    """Judge every pair one-turn and, when rounds > 1, the first `rounds_n` pairs (default all) in the
    evaluation conversation; the report dict, with `folds`-fold calibration where the judge gives P(YES).
    `progress(phase, done, total)` is called as verdicts arrive."""
    requests = [JudgeRequest(candidate=p.candidate, reference=p.reference, question=p.question) for p in pairs]
    # Judged in (question, reference) order, so pairs of one item meet in a slice and share their prefix pass.
    order = sorted(range(len(requests)), key=lambda i: (requests[i].question, requests[i].reference))
    verdicts: list = [None] * len(requests)
    step = max(judge.config.batch_size, 1) * 4  # slices big enough to keep batching and shared prefixes
    for start in range(0, len(order), step):
        chunk = order[start:start + step]
        for i, verdict in zip(chunk, judge.judge([requests[i] for i in chunk])):
            verdicts[i] = verdict
        if progress is not None:
            progress("one-turn verdicts", min(start + step, len(order)), len(requests))
    labels = np.array([p.label for p in pairs])
    ok = np.array([v.ok for v in verdicts])
    yes = np.array([bool(v.score and v.score > 0.5) for v in verdicts])
    probs = [v.p_yes for v in verdicts]
    report = {"judge": judge.identity, "judge_key": identity_key(judge.identity), "pairs": len(pairs),
              "failures": int((~ok).sum()), "threshold": judge.config.threshold,
              **rates(labels[ok], yes[ok])}
    has_p = all(p is not None for p, good in zip(probs, ok) if good) and ok.any()
    if has_p:
        p = np.array([x if x is not None else 0.0 for x in probs])[ok]
        report["auc"] = roc_auc(labels[ok], p)
        report["thresholds"] = thresholds(labels[ok], p)
        report["roc"] = roc_points(labels[ok], p)
    kinds = np.array([p.kind for p in pairs])
    report["kinds"] = sorted(set(kinds.tolist()))
    report["by_kind"], report["by_source"] = {}, {}
    for kind in report["kinds"]:
        mask = (kinds == kind) & ok
        report["by_kind"][kind] = rates(labels[mask], yes[mask])
        if has_p:
            report["by_kind"][kind]["auc"] = roc_auc(labels[mask], np.array([probs[i] for i in np.flatnonzero(mask)]))
    for kind, source in sorted({(p.kind, p.source) for p in pairs}):
        mask = np.array([p.source == source and p.kind == kind for p in pairs]) & ok
        report["by_source"][source if len(report["kinds"]) == 1 else f"{kind} / {source}"] = {
            "kind": kind, **rates(labels[mask], yes[mask])}
    if has_p:
        report["reliability"] = reliability(labels[ok], p)
        report["calibration"] = cross_validate(
            labels[ok], p, [pr.group or f"{pr.question}\n{pr.reference}" for pr, good in zip(pairs, ok) if good],
            kinds[ok].tolist(), [pr.source for pr, good in zip(pairs, ok) if good], k=folds,
            current=judge.config.threshold)
    report["verdicts"] = [{"kind": pr.kind, "source": pr.source, "label": pr.label, "p_yes": v.p_yes,
                           "yes": bool(y), "ok": bool(good)} for pr, v, y, good in zip(pairs, verdicts, yes, ok)]
    if rounds > 1:
        chosen = range(len(pairs))
        if rounds_n is not None and rounds_n < len(pairs):  # half positive, half negative, as the pairs are
            pos = [i for i, p in enumerate(pairs) if p.label][:rounds_n // 2]
            chosen = sorted(pos + [i for i, p in enumerate(pairs) if not p.label][:rounds_n - len(pos)])
        report["rounds"] = {**round_flips(judge, [requests[i] for i in chosen], rounds, progress),
                            "positives": sum(pairs[i].label for i in chosen)}
    return report


def round_flips(judge: Judge, requests: list[JudgeRequest], rounds: int,
                progress: Callable[[str, int, int], None] | None = None) -> dict:
    """How often a later round of the evaluation conversation changes the first round's verdict."""
    done = 0

    def count(_index, _verdict) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(f"{rounds}-round conversations", done, len(requests))

    verdicts = [v for v in judge.converse(requests, rounds, on_verdict=count, protocol="paper")
                if v.ok and len(v.rounds) > 1]
    flipped = sum(any(r != v.rounds[0] for r in v.rounds[1:]) for v in verdicts)
    final_changed = sum(v.score != v.rounds[0] for v in verdicts)
    return {"conversations": len(verdicts), "rounds": rounds, "later_round_flips_round_1": flipped,
            "share": flipped / len(verdicts) if verdicts else None, "final_differs_from_round_1": final_changed}


def roc_points(labels: np.ndarray, p: np.ndarray) -> list[tuple[float, float]]:
    out = []
    for t in np.unique(np.concatenate([[-1.0], p, [2.0]]))[::-1]:
        r = rates(labels, p > t)
        out.append((r["fpr"] or 0.0, r["tpr"] or 0.0))
    return out


def reread(report: dict, config: JudgeConfig) -> dict:
    """The audit `report` re-read at `config`'s threshold from the P(YES) it stored, without running the judge:
    the audit of a judge that differs only in its threshold (the shipped calibrated one). Refused when `config`
    is another judge (model, template, dtype) than the one measured."""
    identity = one_turn_identity(config)
    measured = {k: v for k, v in report["judge"].items() if k != "threshold"}
    if {k: v for k, v in identity.items() if k != "threshold"} != measured:
        raise MedixError(f"the audit was measured on judge {report['judge']}, not {identity}: re-run it instead")
    rows = [v for v in report.get("verdicts") or [] if v["ok"] and v["p_yes"] is not None]
    if not rows:
        raise MedixError("the audit holds no P(YES) per pair (written with --json by this medix version?)")
    labels = np.array([v["label"] for v in rows])
    yes = np.array([v["p_yes"] for v in rows]) > config.threshold
    kinds, sources = np.array([v["kind"] for v in rows]), np.array([v["source"] for v in rows])
    several = len(set(kinds.tolist())) > 1
    out = {**report, "judge": identity, "judge_key": identity_key(identity), "threshold": config.threshold,
           **rates(labels, yes), "reread_from": report["judge_key"],
           "by_kind": {k: {**rates(labels[kinds == k], yes[kinds == k]), "auc": report["by_kind"][k].get("auc")}
                       for k in sorted(set(kinds.tolist()))},
           "by_source": {(f"{k} / {s}" if several else s): {"kind": k, **rates(labels[(kinds == k) & (sources == s)],
                                                                               yes[(kinds == k) & (sources == s)])}
                         for k, s in sorted(set(zip(kinds.tolist(), sources.tolist())))},
           "verdicts": [{**v, "yes": bool(v["ok"] and v["p_yes"] is not None and v["p_yes"] > config.threshold)}
                        for v in report["verdicts"]]}
    if report.get("calibration"):
        out["calibration"] = {**report["calibration"],
                              "current": {"threshold": config.threshold, **summarise(labels, yes, kinds, sources)}}
    return out


def calibrated_config(config: JudgeConfig, report: dict, rule: str = "best_accuracy") -> dict:
    """The judge config as a dict with the chosen threshold, for `--calibrate FILE`."""
    chosen = (report.get("thresholds") or {}).get(rule)
    if chosen and (report.get("calibration") or {}).get("chosen"):  # the method that held best out of sample
        chosen = report["calibration"]["chosen"]
    if "auc" in report and report["auc"] is None and chosen:  # one label class: no threshold can be fitted
        raise MedixError("the pairs hold one label only (all YES or all NO), so no threshold can be fitted; "
                         "calibrate on pairs of both labels")
    if not chosen:
        raise MedixError("this judge gives no probabilities (text verdicts only), so there is no threshold to "
                         "calibrate; use a local judge or a server that returns logprobs")
    # backend and model always: a default judge depends on what is installed where the file is read
    return {**config.model_dump(exclude_defaults=True), "backend": config.backend, "model": config.model,
            "threshold": math.ceil(chosen["threshold"] * 1e4) / 1e4}  # up: the fitted P(YES) itself stays NO

