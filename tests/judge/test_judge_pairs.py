"""Sentence-level audit pairs (medix.judge.pairs) and out-of-sample calibration (medix.judge.calibration).

Expected labels and categories come from the construction rules written in the pairs module's docstring
(a swapped side is a wrong answer, a spelled-out count is the same answer, ...), and the calibration figures
from hand-worked examples, never from what the code returned.
"""

import json

import numpy as np
import pytest

from helpers import REPO
from helpers.cli_runner import cli
from medix.errors import MedixError
from medix.eval.records import EvalItem
from medix.judge.calibration import best_threshold, cross_validate, fit, folds, reliability
from medix.judge.pairs import KINDS, pairs_from_items, parse_kinds

MIRRORS = REPO.parent / "shared" / "benchmarks"


def mcq(reference="Heparin", task="medqa", id_="1", **extra):
    choices = {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Clopidogrel"} | extra.pop("choices", {})
    return EvalItem(id=id_, task=task, question="Which drug?\n\nChoices:\n" +
                    "\n".join(f"{k}. {v}" for k, v in choices.items()), reference=reference, choices=choices, **extra)


def vqa(question, reference, id_="v1", task="rad_vqa", **meta):
    return EvalItem(id=id_, task=task, question=question, reference=reference, meta=meta)


def one_kind(items, kind):
    pairs = pairs_from_items(items, None, 0, (kind,))
    assert {p.kind for p in pairs} == {kind}
    return {p.label: p for p in pairs} if len(pairs) == 2 else pairs


def test_frames_put_the_answer_and_a_distractor_in_one_frame():
    pairs = one_kind([mcq()], "frames")
    good, bad = pairs[True], pairs[False]
    assert "heparin" in good.candidate.lower() and good.candidate.lower() != "heparin"
    assert bad.candidate.lower().replace("aspirin", "X").replace("warfarin", "X").replace("clopidogrel", "X") \
        == good.candidate.lower().replace("heparin", "X")  # the same frame, only the answer differs
    assert good.source.startswith("positive: ") and bad.source.startswith("negative: distractor")
    assert good.reference == "Heparin" and good.group == bad.group == "medqa:1"


def test_negation_asserts_and_denies_a_short_answer():
    pairs = one_kind([vqa("what is shown?", "pneumothorax")], "negation")
    assert pairs[True].source == "positive: asserted" and pairs[False].source == "negative: negated"
    assert "pneumothorax" in pairs[True].candidate.lower() and "pneumothorax" in pairs[False].candidate.lower()
    # answers that are already negative or are values are left out: negating them would be ambiguous
    with pytest.raises(MedixError, match="no items"):
        pairs_from_items([vqa("q?", "no fracture"), vqa("q?", "80", id_="v2")], None, 0, ("negation",))


def test_yesno_keeps_the_explanation_and_flips_the_polarity():
    pairs = one_kind([vqa("is there a pneumothorax?", "no", answer_type="CLOSED")], "yesno")
    assert pairs[True].candidate.startswith("No, there is no pneumothorax")
    assert pairs[False].candidate.startswith("Yes, there is a pneumothorax")
    assert pairs[True].candidate[len("No, there is no pneumothorax"):] == \
        pairs[False].candidate[len("Yes, there is a pneumothorax"):]  # the same explanation
    pubmed = EvalItem(id="7", task="pubmedqa", question="Contexts:\nLong abstract.\nQuestion: Does X help?",
                      reference="yes\nX helped in most patients. More text.")
    pairs = one_kind([pubmed], "yesno")
    assert pairs[True].candidate == "Yes, it does; X helped in most patients."
    assert pairs[False].candidate == "No, it does not; X helped in most patients."
    assert pairs[True].question == "Does X help?"  # the abstract is left out of the audit prompt


def test_laterality_swaps_the_side_and_location_another_place():
    pairs = one_kind([vqa("where is the lesion?", "right lower lobe")], "laterality")
    assert "right lower lobe" in pairs[True].candidate and "left lower lobe" in pairs[False].candidate
    assert pairs[False].source == "negative: side swapped"
    places = [vqa("which organ?", "Liver", id_="a", task="slake_vqa", content_type="Organ"),
              vqa("which organ?", "Spleen", id_="b", task="slake_vqa", content_type="Organ")]
    pairs = pairs_from_items(places, None, 0, ("location",))
    by_group = {(p.group, p.label): p.candidate for p in pairs}
    assert "liver" in by_group[("slake_vqa:a", True)] and "spleen" in by_group[("slake_vqa:a", False)]


def test_numbers_change_the_value_or_spell_a_count_out():
    pairs = one_kind([vqa("how many lesions?", "2", task="slake_vqa")], "numbers")
    assert pairs[True].candidate == "There are two." and pairs[False].candidate != "There are two."
    assert pairs[False].candidate.startswith("There are ") and pairs[False].source == "negative: number changed"
    pairs = one_kind([mcq("5 mg", choices={"B": "5 mg", "A": "10 mg"})], "numbers")
    assert "5 mg" in pairs[True].candidate and "5 mg" not in pairs[False].candidate
    assert pairs_from_items([mcq("2nd quartile", choices={"B": "2nd quartile"})], None, 0, ("numbers", "options"))[0] \
        .kind == "options"  # an ordinal is not a number to change: no numbers pair


def test_synonyms_use_the_terms_own_synonym_or_another_terms():
    pairs = one_kind([vqa("which modality?", "CT", task="slake_vqa")], "synonyms")
    assert "computed tomography" in pairs[True].candidate
    assert "computed tomography" not in pairs[False].candidate and pairs[False].candidate != pairs[True].candidate
    assert pairs[True].source == "positive: abbreviation or synonym"


def test_every_kind_from_the_mirrors_is_balanced(tmp_path):
    if not MIRRORS.is_dir():
        pytest.skip("benchmark mirrors not beside the repository")
    from medix.eval.items import TaskUnavailable, load_items
    from medix.eval.registry import select_tasks

    items = []
    for spec in select_tasks("all"):
        if spec.kind != "report":
            try:
                items += load_items(spec, MIRRORS, protocol="paper")
            except TaskUnavailable:
                pass
    pairs = pairs_from_items(items, 800, 0, KINDS)
    for kind in KINDS:
        labels = [p.label for p in pairs if p.kind == kind]
        assert len(labels) == 100 and sum(labels) == 50, kind  # 800 / 8 kinds, half positive
    assert pairs == pairs_from_items(items, 800, 0, KINDS)  # the seed fixes the draw


def test_parse_kinds():
    assert parse_kinds("all") == KINDS and "options" not in parse_kinds("sentences")
    assert parse_kinds("yesno,numbers") == ("yesno", "numbers")
    with pytest.raises(MedixError, match="unknown kind.*'yes-no'|yes-no"):
        parse_kinds("yes-no")


# --- calibration -------------------------------------------------------------------------------------------

def test_best_threshold_by_hand():
    labels = np.array([False, False, True, False, True, True])
    p = np.array([0.1, 0.3, 0.4, 0.5, 0.6, 0.9])
    # cuts: at 0.3 → YES for 0.4,0.5,0.6,0.9 → 5/6 right; at 0.5 → YES for 0.6,0.9 → 5/6; ties go to the stricter
    assert best_threshold(labels, p) == 0.5


def test_isotonic_pools_adjacent_violators_by_hand():
    labels = np.array([False, True, False, True])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    model = fit("isotonic", labels, p)
    # PAV on 0,1,0,1: the middle violators pool to 0.5 → 0, 0.5, 0.5, 1
    assert model.probability(p).tolist() == [0.0, 0.5, 0.5, 1.0]
    assert model.yes(p).tolist() == [False, False, False, True]  # YES iff the calibrated value > 0.5


def test_platt_threshold_is_where_the_fit_crosses_one_half():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.5
    p = np.clip(np.where(labels, 0.7, 0.3) + rng.normal(0, 0.15, 400), 0.01, 0.99)
    model = fit("platt", labels, p)
    assert model.probability(np.array([model.threshold]))[0] == pytest.approx(0.5, abs=1e-6)
    assert 0.4 < model.threshold < 0.6  # symmetric classes: the cut near the middle


def test_folds_keep_an_items_pairs_together():
    groups = [f"item{i // 3}" for i in range(30)]
    fold = folds(groups, 5)
    for g in set(groups):
        assert len({fold[i] for i, h in enumerate(groups) if h == g}) == 1
    assert sorted(set(fold.tolist())) == [0, 1, 2, 3, 4]


def test_out_of_sample_is_worse_than_in_sample_when_the_fit_chases_noise():
    """Labels independent of P(YES): in sample a threshold finds a lucky cut; out of sample it is a coin."""
    rng = np.random.default_rng(1)
    labels, p = rng.random(200) < 0.5, rng.random(200)
    groups = [str(i) for i in range(200)]
    result = cross_validate(labels, p, groups, ["k"] * 200, ["s"] * 200, k=5)
    threshold = result["methods"]["threshold"]
    assert threshold["in_sample"]["accuracy"] > threshold["out_of_sample"]["accuracy"]
    assert abs(threshold["out_of_sample"]["accuracy"] - 0.5) < 0.1
    separable = cross_validate(np.array([True, False] * 50), np.array([0.9, 0.1] * 50), groups[:100],
                               ["k"] * 100, ["s"] * 100, k=5, current=0.5)
    assert separable["methods"]["threshold"]["out_of_sample"]["accuracy"] == 1.0
    assert separable["current"]["accuracy"] == 1.0 and separable["chosen"]["method"] in ("threshold", "platt",
                                                                                         "isotonic")


def test_reliability_bins_by_hand():
    bins = reliability(np.array([True, False, True, True]), np.array([0.05, 0.08, 0.95, 0.91]))
    assert [(b["n"], b["positive_share"]) for b in bins] == [(2, 0.5), (2, 1.0)]


# --- a small real audit on the fast judge ------------------------------------------------------------------

def test_audit_of_every_kind_on_the_fast_judge(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path / "cache"))
    pairs = tmp_path / "pairs.jsonl"
    items = [mcq(id_="1"), mcq("Warfarin", id_="2"), vqa("is there a pneumothorax?", "no", answer_type="CLOSED"),
             vqa("where is the lesion?", "right lower lobe", id_="v2"), vqa("which modality?", "CT", id_="v3"),
             vqa("how many lesions?", "2", id_="v4"), vqa("what is shown?", "pneumothorax", id_="v5")]
    built = pairs_from_items(items, None, 0, KINDS)
    pairs.write_text("".join(json.dumps({"reference": p.reference, "candidate": p.candidate, "label": p.label,
                                         "question": p.question, "source": p.source, "kind": p.kind,
                                         "group": p.group}) + "\n" for p in built))
    out = tmp_path / "audit.json"
    code, output, error = cli("judge", "audit", "--pairs", str(pairs), "--n", "1000", "--rounds", "1", "--judge-model",
                 "smollm2-135m", "--json", str(out), "--folds", "2")
    assert code == 0 and error is None, output
    report = json.loads(out.read_text())
    assert report["pairs"] == len(built)
    assert set(report["kinds"]) == {p.kind for p in built} - {"location"}
    for kind, r in report["by_kind"].items():  # every kind balanced: one positive per negative
        assert r["positives"] == r["negatives"] > 0, kind
    assert report["by_source"]["negation / negative: negated"] == {**report["by_source"][
        "negation / negative: negated"], "kind": "negation", "positives": 0}
    verdicts = report["verdicts"]
    assert [v["label"] for v in verdicts] == [p.label for p in built]
    assert {v["kind"] for v in verdicts} == set(report["kinds"])
    assert "calibration" in report and report["calibration"]["folds"] == 2
    assert "false YES" in output and "calibration" in output


def test_an_audit_reread_at_another_threshold_by_hand():
    from medix.judge.config import JudgeConfig
    from medix.judge.audit import reread
    from medix.judge.identity import identity_key, one_turn_identity

    measured = JudgeConfig(backend="local", model="smollm2-135m", threshold=0.5)
    verdicts = [{"kind": "yesno", "source": "positive: x", "label": True, "p_yes": 0.45, "ok": True},
                {"kind": "yesno", "source": "negative: y", "label": False, "p_yes": 0.30, "ok": True},
                {"kind": "numbers", "source": "positive: x", "label": True, "p_yes": 0.60, "ok": True},
                {"kind": "numbers", "source": "negative: y", "label": False, "p_yes": 0.42, "ok": True}]
    report = {"judge": one_turn_identity(measured), "judge_key": identity_key(one_turn_identity(measured)),
              "threshold": 0.5, "pairs": 4, "verdicts": verdicts,
              "by_kind": {"yesno": {"auc": 1.0}, "numbers": {"auc": 1.0}}}
    shipped = JudgeConfig(backend="local", model="smollm2-135m", threshold=0.4)
    out = reread(report, shipped)
    # at 0.4: YES for 0.45, 0.60, 0.42 → the yesno pairs right, the numbers negative a false YES
    assert out["accuracy"] == 0.75 and out["fpr"] == 0.5 and out["fnr"] == 0.0
    assert out["by_kind"]["yesno"]["accuracy"] == 1.0 and out["by_kind"]["numbers"]["accuracy"] == 0.5
    assert out["judge"]["threshold"] == 0.4 and out["judge_key"] == identity_key(one_turn_identity(shipped))
    assert out["reread_from"] == report["judge_key"] and out["by_source"]["numbers / negative: y"]["fpr"] == 1.0
    with pytest.raises(MedixError, match="re-run it"):
        reread(report, JudgeConfig(backend="local", model="qwen2.5-coder-1.5b", threshold=0.4))


def test_calibrating_on_one_label_class_is_refused_before_the_judge(tmp_path, monkeypatch):
    import medix.cli.judge
    import medix.judge

    monkeypatch.setattr(medix.judge, "Judge", lambda *a, **k: pytest.fail("the judge was built"))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"reference": "a", "candidate": c, "label": True}) + "\n" for c in "ab"))
    code, output, error = cli("judge", "audit", "--pairs", str(pairs), "--calibrate", str(tmp_path / "j.yaml"))
    assert code != 0 and error is not None and "one label only" in str(error)
    assert not (tmp_path / "j.yaml").exists()
