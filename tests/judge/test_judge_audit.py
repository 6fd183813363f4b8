"""`medix judge audit`: pairs built without a model, metrics against a judge whose answers are known."""

import json

import numpy as np
import pytest

from helpers.cli_runner import cli
from helpers.eval_data import write_pairs
from medix.judge.config import JudgeConfig
from medix.errors import MedixError
from medix.eval.records import EvalItem
from medix.judge import Judge
from medix.judge.audit import Pair, calibrated_config, pairs_from_file, pairs_from_items, roc_auc, run_audit, thresholds
from medix.judge.audit_store import save_audit, weak_judge_warning
from medix.testing.stub_server import JudgeStub


def test_pairs_from_an_mcq_item():
    choices = {"A": "Aspirin", "B": "The radial nerve", "C": "Heparin", "D": "Ulnar nerve", "E": "Warfarin"}
    item = EvalItem(id="1", task="medqa",
                    question="Q?\n\nChoices:\n" + "\n".join(f"{k}. {v}" for k, v in choices.items()),
                    reference="The radial nerve", choices=choices)
    pairs = pairs_from_items([item])  # 6 positive forms, 8 negatives → 6 + 6
    positives = {p.candidate: p.source for p in pairs if p.label}
    negatives = {p.candidate for p in pairs if not p.label}
    assert {"B", "B. The radial nerve", "the radial nerve", "radial nerve"} <= set(positives)
    assert positives["B"] == "positive: letter" and positives["radial nerve"] == "positive: article"
    assert {"Aspirin", "C. Heparin"} <= negatives and "The radial nerve" not in negatives
    assert all(p.reference == "The radial nerve" and "Choices:" in p.question for p in pairs)
    assert sum(p.label for p in pairs) == sum(not p.label for p in pairs)  # balanced


def test_auc_and_thresholds_by_hand():
    labels = np.array([True, True, True, False, False])
    p = np.array([0.9, 0.8, 0.3, 0.4, 0.1])
    assert roc_auc(labels, p) == pytest.approx(5 / 6)  # 5 of 6 positive/negative pairs ordered right
    best = thresholds(labels, p)
    assert best["best_accuracy"]["accuracy"] == pytest.approx(0.8)
    assert best["fpr_at_most_5pct"]["fpr"] == 0 and best["fpr_at_most_5pct"]["tpr"] == pytest.approx(2 / 3)


def test_audit_against_a_known_judge(tmp_path, monkeypatch):
    """The stub says YES iff the texts match after lower-casing / a trailing period, with P = 0.8 / 0.2."""
    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path))
    pairs = [Pair("pneumonia", "pneumonia", True, source="same"), Pair("pneumonia", "Pneumonia.", True, source="case"),
             Pair("pneumonia", "B", True, source="letter"), Pair("pneumonia", "effusion", False, source="distractor")]
    with JudgeStub() as stub:
        config = JudgeConfig(backend="openai", model="stub", base_urls=[stub.url], cache=False)
        with Judge(config) as judge:
            report = run_audit(judge, pairs, rounds=3)
    assert report["accuracy"] == 0.75 and report["tpr"] == pytest.approx(2 / 3) and report["fpr"] == 0.0
    assert report["auc"] == pytest.approx(2 / 3 + 0.5 / 3)
    assert report["by_source"]["letter"]["accuracy"] == 0.0 and report["by_source"]["case"]["accuracy"] == 1.0
    assert report["rounds"]["conversations"] == 4 and report["rounds"]["later_round_flips_round_1"] == 0
    save_audit(report)
    warning = weak_judge_warning(config)  # 75% is above the 70% line
    assert warning is None
    save_audit({**report, "accuracy": 0.5})
    assert "measured 50% accuracy" in weak_judge_warning(config)
    assert calibrated_config(config, report)["threshold"] == pytest.approx(0.2)


def test_calibrated_config_names_its_judge_even_when_it_is_the_default(monkeypatch):
    """The fitted threshold belongs to one model: the written config names it, though that model is the default
    here (a machine without the CPU judge would otherwise read the file as SmolLM2 with Qwen's threshold)."""
    from medix.models import zoo

    monkeypatch.setenv(zoo.DEFAULT_JUDGE_ENV, "qwen2.5-coder-1.5b")
    written = calibrated_config(JudgeConfig(), {"thresholds": {"best_accuracy": {"threshold": 0.61234}}})
    assert written["model"] == "qwen2.5-coder-1.5b" and written["backend"] == "local"
    assert written["threshold"] == 0.6124  # rounded up: YES iff p > t keeps the fitted pair (p = 0.61234) a NO
    monkeypatch.setenv(zoo.DEFAULT_JUDGE_ENV, "smollm2-135m")
    assert JudgeConfig(**written).model == "qwen2.5-coder-1.5b"


def test_rounds_on_a_balanced_subset_with_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path))
    pairs = [Pair("pneumonia", c, False) for c in ("effusion", "edema")] + \
        [Pair("pneumonia", c, True) for c in ("pneumonia", "Pneumonia.", "pneumonia")]  # negatives first
    seen = []
    with JudgeStub() as stub:
        with Judge(JudgeConfig(backend="openai", model="stub", base_urls=[stub.url], cache=False)) as judge:
            report = run_audit(judge, pairs, rounds=2, rounds_n=2, progress=lambda *a: seen.append(a))
    assert report["n"] == 5 and report["rounds"]["conversations"] == 2 and report["rounds"]["positives"] == 1
    assert ("one-turn verdicts", 5, 5) in seen and ("2-round conversations", 2, 2) in seen


def test_pairs_file_errors_name_row_and_field(tmp_path):
    good = tmp_path / "p.jsonl"
    good.write_text(json.dumps({"reference": "a", "candidate": "b", "label": 0}) + "\n")
    assert pairs_from_file(good) == [Pair("a", "b", False)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"reference": "a", "candidate": "b", "label": "maybe"}) + "\n")
    with pytest.raises(MedixError, match=r"bad.jsonl, row 1, field 'label'"):
        pairs_from_file(bad)


def test_the_embedded_judge_is_flagged_on_a_fresh_clone(tmp_path, monkeypatch):
    """No audit of the user's own: the shipped one (judge/known_audits.json) must match the default judge's
    identity, so changing its template without re-measuring (DEVELOPERS.md) turns this red."""
    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path))
    warning = weak_judge_warning(JudgeConfig())
    assert warning is not None and "smollm2-135m" in warning and "960 labelled pairs" in warning


def test_audit_rates_divide_by_their_own_class():
    """TPR = true YES / positives, FPR = false YES / negatives (not / all labels): 3 positives, 5 negatives,
    YES on 2 positives and on 1 negative → TPR 2/3, FPR 1/5, accuracy (2 + 4) / 8."""
    from medix.judge.audit import rates

    labels = np.array([True, True, True, False, False, False, False, False])
    yes = np.array([True, True, False, True, False, False, False, False])
    r = rates(labels, yes)
    assert r["tpr"] == pytest.approx(2 / 3) and r["fpr"] == pytest.approx(1 / 5)
    assert r["accuracy"] == pytest.approx(6 / 8) and (r["positives"], r["negatives"]) == (3, 5)


def test_audit_on_pairs_of_one_label_and_a_smaller_audit_keeps_the_cached_one(tmp_path, monkeypatch, stub):
    from medix.judge.audit_store import cached_audit

    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path / "cache"))
    args = ["judge", "audit", "--judge-backend", "openai", "--judge-model", "stub", "--judge-url", stub.url,
            "--rounds", "1"]
    code, output, error = cli(*args, "--pairs", str(write_pairs(tmp_path, [True, False] * 4)))
    assert code == 0, (output, error)
    (tmp_path / "small").mkdir()
    code, output, error = cli(*args, "--pairs", str(write_pairs(tmp_path / "small", [True, True])))
    assert code == 0, (output, error)  # AUC undefined: said, no traceback
    config = JudgeConfig(backend="openai", model="stub", base_urls=[stub.url])
    assert cached_audit(config)["pairs"] == 8  # the 2-pair audit did not replace the 8-pair one


def test_a_small_audit_never_replaces_the_shipped_one(tmp_path, monkeypatch):
    from medix.judge.audit_store import cached_audit
    from medix.judge.identity import one_turn_identity

    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path))
    config = JudgeConfig(backend="local", model="smollm2-135m")
    shipped = cached_audit(config)
    assert shipped is not None and shipped["pairs"] >= 100  # measured for the embedded judge, shipped with medix
    kept = save_audit({"judge": one_turn_identity(config), "pairs": 4, "accuracy": 1.0, "tpr": 1.0, "fpr": 0.0,
                       "auc": 1.0})
    assert kept is not None and kept["pairs"] == shipped["pairs"]
    assert cached_audit(config)["pairs"] == shipped["pairs"]
