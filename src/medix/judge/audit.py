"""Measure a judge before trusting it: `medix judge audit`.

    medix judge audit --sample --n 200 --json audit.json          # the embedded judge on the bundled items
    medix judge audit --judge-backend openai --judge-model Qwen/Qwen3-4B-Instruct-2507 --data-dir benchmarks
    medix judge audit --pairs my_pairs.jsonl --calibrate judge.yaml

Labelled (reference, candidate, label) pairs come from real MCQ items, built without any model:
  negatives  the correct option vs each distractor, as text and as "C. text" (plausible wrong answers:
             the case that matters for reward hacking);
  positives  the correct option vs forms that must count as the same answer: its letter, "B. text",
             lower case, without / with a leading article, trailing punctuation, inside a short sentence.
or from a user's JSONL file (`reference`, `candidate`, `label`, optional `question`, `source`).
Reports accuracy, TPR, false-YES rate (FPR), AUC where the judge gives P(YES), the threshold that
maximises accuracy and the one that keeps FPR ≤ 5%, a per-source table, how often rounds 2-3 of the
evaluation conversation flip round 1, and a ROC plot. The result is cached per judge identity, so
`medix train`, `medix reward score` and `medix eval run` can warn about a judge that measured badly.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from medix.backends import get_backend
from medix.config import JudgeConfig
from medix.data.datasets import read_records
from medix.errors import MedixError, where
from medix.files import cache_dir
from medix.judge.core import Judge, identity_key, one_turn_identity
from medix.judge.types import JudgeRequest

log = logging.getLogger(__name__)
WEAK_ACCURACY = 0.70  # below this a cached audit triggers the warning in train / reward score / eval run
_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Pair:
    reference: str
    candidate: str
    label: bool  # True: the candidate means the reference
    question: str = ""
    source: str = "file"  # how the pair was built


def _variants(letter: str, text: str) -> list[tuple[str, str]]:
    """(source, candidate) forms that must count as the correct answer `text` (option `letter`)."""
    bare = _ARTICLE.sub("", text)
    out = [("letter", letter), ("letter+text", f"{letter}. {text}"), ("lower case", text.lower()),
           ("punctuation", f"{text}."), ("sentence", f"The answer is {text[0].lower() + text[1:]}.")]
    if bare != text:
        out.append(("article", bare))
    elif text[:1].islower() or text[:1].isupper():  # a cased first letter: "the x" reads as English
        out.append(("article", f"the {text[0].lower() + text[1:]}"))
    return [(s, c) for s, c in out if c.strip() and c != text]


def pairs_from_items(items, n: int | None = None, seed: int = 0) -> list[Pair]:
    """Balanced positive / negative pairs from MCQ items (EvalItems with `choices`); `n` caps the total."""
    rng = random.Random(seed)
    positives, negatives = [], []
    for item in items:
        if not item.choices or len(item.choices) < 2:
            continue
        letter = next((k for k, v in item.choices.items() if v.strip() == item.reference.strip()), None)
        if letter is None:  # medix-protocol reference "B. text"
            letter = item.reference[:1] if item.reference[1:3] == ". " else None
        if letter not in item.choices:
            continue
        text = item.choices[letter].strip()
        if len(text) < 2:
            continue
        question = item.question
        for source, candidate in _variants(letter, text):
            positives.append(Pair(text, candidate, True, question, f"positive: {source}"))
        for other, wrong in item.choices.items():
            if other != letter and wrong.strip() and wrong.strip().lower() != text.lower():
                negatives.append(Pair(text, wrong.strip(), False, question, "negative: distractor"))
                negatives.append(Pair(text, f"{other}. {wrong.strip()}", False, question,
                                      "negative: distractor letter+text"))
    rng.shuffle(positives)
    rng.shuffle(negatives)
    half = min(len(positives), len(negatives)) if n is None else min(n // 2, len(positives), len(negatives))
    pairs = positives[:half] + negatives[:half]
    if not pairs:
        raise MedixError("no MCQ items to build audit pairs from; pass --tasks with MCQ tasks, --sample or --pairs")
    return pairs


def pairs_from_file(path: str | Path) -> list[Pair]:
    """A user's labelled pairs: JSONL with reference, candidate, label (true/false or 1/0), optional question."""
    path = Path(path)
    pairs = []
    for row, record in enumerate(read_records(path), 1):
        for name in ("reference", "candidate"):
            if not isinstance(record.get(name), str):
                raise MedixError(f"{where(path, row, name)}: missing or not a string")
        label = record.get("label")
        if label not in (True, False, 0, 1, "yes", "no", "true", "false"):
            raise MedixError(f"{where(path, row, 'label')}: expected true/false or 1/0, got {label!r}")
        pairs.append(Pair(record["reference"], record["candidate"], label in (True, 1, "yes", "true"),
                          str(record.get("question") or ""), str(record.get("source") or "file")))
    if not pairs:
        raise MedixError(f"{path}: no pairs")
    return pairs


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
            "n": int(len(labels)), "positives": positives, "negatives": negatives}


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
              progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Judge every pair one-turn and, when rounds > 1, the first `rounds_n` pairs (default all) in the
    evaluation conversation; the report dict. `progress(phase, done, total)` is called as verdicts arrive."""
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
    report["by_source"] = {}
    for source in sorted({p.source for p in pairs}):
        mask = np.array([p.source == source for p in pairs]) & ok
        report["by_source"][source] = rates(labels[mask], yes[mask])
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


def roc_png(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if report.get("roc"):
        fpr, tpr = zip(*report["roc"])
        label = "AUC undefined (one label only)" if report.get("auc") is None else f"AUC {report['auc']:.3f}"
        ax.plot(fpr, tpr, marker=".", label=label)
    ax.scatter([report["fpr"] or 0], [report["tpr"] or 0], color="red", zorder=3,
               label=f"threshold {report['threshold']}")
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1)
    ax.set_xlabel("false-YES rate (FPR)")
    ax.set_ylabel("true-YES rate (TPR)")
    ax.set_title(f"judge audit: {report['judge']['model']}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def audit_cache_path(identity: dict) -> Path:
    return cache_dir() / "audits" / f"{identity_key(identity)}.json"


def save_audit(report: dict) -> dict | None:
    """Cache the audit of this judge identity, unless the cached or shipped one was measured on more pairs: a
    4-pair audit must not replace a 400-pair one (and silence the weak-judge warning). Returns the audit kept
    instead, or None when this one was saved."""
    path = audit_cache_path(report["judge"])
    previous = _audit_of(report["judge"])  # the user's cached audit, else the one shipped with medix
    if previous and (previous.get("pairs") or 0) > report["pairs"]:
        return previous
    path.parent.mkdir(parents=True, exist_ok=True)
    slim = {k: v for k, v in report.items() if k != "roc"}
    path.write_text(json.dumps(slim, indent=2), encoding="utf-8")
    return None


KNOWN_AUDITS = Path(__file__).parent / "known_audits.json"


def cached_audit(config: JudgeConfig) -> dict | None:
    """The last audit of this judge identity (one-turn): the user's own (MEDIX_CACHE/audits), else the one
    measured for the embedded judges and shipped with medix (judge/known_audits.json), else None."""
    return _audit_of(one_turn_identity(config))


def _audit_of(identity: dict) -> dict | None:
    path = audit_cache_path(identity)
    try:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        known = json.loads(KNOWN_AUDITS.read_text(encoding="utf-8")) if KNOWN_AUDITS.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return known.get(identity_key(identity))


def judge_summary(config: JudgeConfig) -> dict:
    """Which judge this is and what its audit measured (audit None: never audited), for a run's summary."""
    identity = one_turn_identity(config)
    audit = _audit_of(identity)
    keep = ("pairs", "accuracy", "tpr", "fpr", "auc")
    return {"model": config.model, "backend": config.backend, "threshold": config.threshold,
            "dtype": identity.get("dtype", "float32") if get_backend(config.backend).in_process else None,
            "judge_key": identity_key(identity), "audit": {k: audit.get(k) for k in keep} if audit else None,
            "warning": _weak_message(config, audit)}


def warn_if_weak(config: JudgeConfig, weight: float = 1.0) -> None:
    """Log the weak-judge warning (train, reward score, eval run call this before they start)."""
    message = weak_judge_warning(config) if weight > 0 else None
    if message:
        log.warning(message)


def weak_judge_warning(config: JudgeConfig) -> str | None:
    """A warning line when this judge's cached audit measured accuracy below WEAK_ACCURACY, else None."""
    return _weak_message(config, cached_audit(config))


def _weak_message(config: JudgeConfig, audit: dict | None) -> str | None:
    if not audit or audit.get("accuracy") is None or audit["accuracy"] >= WEAK_ACCURACY:
        return None
    return (f"judge {config.model} ({config.backend}) measured {100 * audit['accuracy']:.0f}% accuracy on "
            f"{audit['pairs']} labelled pairs (FPR {100 * (audit.get('fpr') or 0):.0f}%, TPR "
            f"{100 * (audit.get('tpr') or 0):.0f}%), below {100 * WEAK_ACCURACY:.0f}%: its accuracy_llm / "
            "verdicts carry little signal. Use a stronger judge: qwen2.5-coder-1.5b on CPU (pip install "
            "\"medix[cpu-judge]\"), a served model (docs/judge.md); or calibrate its threshold with "
            "`medix judge audit --calibrate`.")


def calibrated_config(config: JudgeConfig, report: dict, rule: str = "best_accuracy") -> dict:
    """The judge config as a dict with the chosen threshold, for `--calibrate FILE`."""
    chosen = (report.get("thresholds") or {}).get(rule)
    if "auc" in report and report["auc"] is None and chosen:  # one label class: no threshold can be fitted
        raise MedixError("the pairs hold one label only (all YES or all NO), so no threshold can be fitted; "
                         "calibrate on pairs of both labels")
    if not chosen:
        raise MedixError("this judge gives no probabilities (text verdicts only), so there is no threshold to "
                         "calibrate; use a local judge or a server that returns logprobs")
    # backend and model always: a default judge depends on what is installed where the file is read
    return {**config.model_dump(exclude_defaults=True), "backend": config.backend, "model": config.model,
            "threshold": math.ceil(chosen["threshold"] * 1e4) / 1e4}  # up: the fitted P(YES) itself stays NO

