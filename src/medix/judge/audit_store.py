"""What is known of a judge: its audits, cached per judge identity (MEDIX_CACHE/audits, else the ones shipped
for the embedded judges in judge/known_audits.json), the judge line of a run's summary, and the weak-judge
warning `medix train`, `medix reward score` and `medix eval run` log before they start.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from medix.backends import get_backend
from medix.files import cache_dir
from medix.judge.config import JudgeConfig
from medix.judge.identity import identity_key, one_turn_identity

log = logging.getLogger(__name__)

WEAK_ACCURACY = 0.70  # below this a cached audit triggers the warning in train / reward score / eval run


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
    slim = {k: v for k, v in report.items() if k not in ("roc", "verdicts")}
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
    keep = ("pairs", "accuracy", "tpr", "fpr", "auc", "kinds")
    return {"model": config.model, "backend": config.backend, "threshold": config.threshold,
            "dtype": identity.get("dtype", "float32") if get_backend(config.backend).in_process else None,
            "judge_key": identity_key(identity),
            "audit": {**{k: audit.get(k) for k in keep}, "kinds": audit_kinds(audit),
                      "out_of_sample": _out_of_sample(audit)} if audit else None,
            "warning": _weak_message(config, audit)}


def audit_kinds(audit: dict) -> list[str]:
    """The kinds of pairs an audit was measured on; an audit from before the kinds existed was on MCQ options."""
    return audit.get("kinds") or ["options"]


def describe_kinds(kinds: list[str]) -> str:
    """"options only" / "sentences only (…)" / "options + 7 sentence kinds": what an audit figure is about."""
    sentences = [k for k in kinds if k != "options"]
    if not sentences:
        return "MCQ options only, not sentences"
    if "options" not in kinds:
        return f"sentences only ({', '.join(sentences)})"
    return f"options + {len(sentences)} sentence kinds"


def _out_of_sample(audit: dict) -> dict | None:
    """The chosen calibration's out-of-sample accuracy, false-YES rate and folds, where the audit has one."""
    calibration = audit.get("calibration") or {}
    chosen = (calibration.get("chosen") or {}).get("method")
    oos = (calibration.get("methods") or {}).get(chosen, {}).get("out_of_sample") if chosen else None
    if not oos:
        return None
    return {"method": chosen, "folds": calibration["folds"], "accuracy": oos["accuracy"], "fpr": oos["fpr"]}


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
