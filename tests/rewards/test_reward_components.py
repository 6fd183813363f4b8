"""One reward path: a component registered in the table (`rewards/table.COMPONENTS`) reaches the weights config,
the formula, the results, the TRL metrics and completion records, the `medix reward score` table and the EasyR1 /
verl dicts, with nothing else changed. Adding one takes two edits — its scorer (in `rewards/components.py`) and its
row in the table, from which `RewardWeights` gets the weight field — which the `brevity` fixture stands in for at
run time (a scorer class, a row, the weights model derived with it). Also: the guard is decided once per sample
and the judge's loop entered once per batch."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from pydantic import ValidationError
from helpers.scripted_run import scripted_run, train

from medix.judge.config import JudgeConfig
from medix.rewards.config import RewardConfig, RewardWeights
from medix.judge import Judge
from medix.rewards import components, engines, score_file, table
from medix.rewards.components import Batch, Column, Scorer
from medix.rewards.composite import CompositeReward
from medix.rewards.config import weights_model
from medix.rewards.table import Component


class BrevityScorer(Scorer):
    """Toy component: 1 when the final answer has at most three words (None without an answer block)."""

    def __call__(self, batch: Batch) -> Column:
        return Column([None if a is None else float(len(a.split()) <= 3) for a in batch.answers])


BREVITY = Component("brevity", BrevityScorer, "brevity", 0.15, "Weight of the brevity reward (inside the bracket).",
                    in_bracket=True, text_only=True, label="brief")
# RewardWeights as the table with the new row derives it (the judge and embed defaults moved to make room).
BrevityWeights = weights_model([replace(table.COMPONENTS["accuracy_llm"], default=0.5),
                                replace(table.COMPONENTS["accuracy_embed"], default=0.3), BREVITY],
                               base=RewardWeights, name="BrevityWeights")


@pytest.fixture
def brevity(monkeypatch):
    monkeypatch.setitem(table.COMPONENTS, "brevity", BREVITY)


def test_weights_are_derived_from_the_table():
    """Each row's weight field, default, description and bounds, and the content-weight check over the
    inside-bracket rows, come from the table."""
    assert list(RewardWeights.model_fields) == ["judge", "embed", "modality", "format"]
    assert RewardWeights().model_dump() == {"judge": 0.575, "embed": 0.375, "modality": 0.05, "format": 0.1}
    assert RewardWeights.model_fields["format"].description.startswith("w_f")
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        RewardWeights(format=1.5)
    derived = weights_model([*table.COMPONENTS.values(), BREVITY])  # the table with the new row
    assert list(derived.model_fields) == ["judge", "embed", "modality", "format", "brevity"]
    assert derived.model_fields["brevity"].default == 0.15
    with pytest.raises(ValidationError, match="judge \\+ embed \\+ modality \\+ brevity weights must be > 0"):
        derived(judge=0, embed=0, modality=0, brevity=0)
    assert derived(judge=0, embed=0, modality=0, brevity=0.2).brevity == 0.2


def judge_config(url: str) -> JudgeConfig:
    return JudgeConfig(backend="openai", model="stub", base_urls=[url], cache=False)


# Decided by the guards (no judge verdict needed), so every value is known from the specification:
# (response, solution, has_image, overall = 0.9·(0.5·llm + 0.3·embed + 0.05·modality + 0.15·brevity) + 0.1·format,
# inside weights renormalised when modality does not apply).
CASES = [
    ("<X_RAY> <think>r</think> <answer>Pneumothorax</answer>", "<X_RAY> Pneumothorax", True, 1.0),
    ("<X_RAY> <think>r</think> <answer>YES</answer>", "<X_RAY> Fracture", True, 0.9 * (0.05 + 0.15) + 0.1),
    ("<X_RAY> <think>r</think> <answer>" + "word " * 900 + "</answer>", "<X_RAY> Fracture", True, 0.9 * 0.05 + 0.1),
    ("<think>r</think> <answer>YES</answer>", "Fracture", False, 0.9 * 0.15 / 0.95 + 0.1),
]


def scored(url: str):
    composite = CompositeReward(RewardConfig(weights=BrevityWeights(), judge=judge_config(url)))
    try:
        return composite.score([c[0] for c in CASES], [c[1] for c in CASES], None, [c[2] for c in CASES])
    finally:
        composite.close()


def test_a_registered_component_is_in_the_formula_and_the_results(brevity, stub_url):
    results = scored(stub_url)
    assert [r.brevity for r in results] == [1.0, 1.0, 0.0, 1.0]
    assert [r.overall for r in results] == pytest.approx([c[3] for c in CASES])
    assert results[0].weights["brevity"] == pytest.approx(0.9 * 0.15)
    assert list(results[0].to_dict())[:6] == ["overall", "accuracy_llm", "accuracy_embed", "modality", "format",
                                              "brevity"]


def test_a_registered_component_is_in_the_cli_table_and_the_adapters(brevity, stub_url, monkeypatch):
    results = scored(stub_url)
    columns, cells = score_file.table([{"id": f"r{i}"} for i in range(len(CASES))], results)
    assert columns == ["id", "answer", "overall", "llm", "embed", "modality", "format", "brief", "note"]
    assert [row[columns.index("brief")] for row in cells] == ["1.000", "1.000", "0.000", "1.000", "0.750"]
    assert score_file.summarize(results)["brevity"] == 0.75

    composite = CompositeReward(RewardConfig(weights=BrevityWeights(), judge=judge_config(stub_url)))
    monkeypatch.setattr(engines, "_composite", lambda format_weight=None: composite)
    try:
        easy = engines.easyr1_compute_score([{"response": c[0], "ground_truth": c[1]} for c in CASES[:3]])
        verl = engines.verl_compute_score("medix", CASES[2][0], CASES[2][1])
    finally:
        composite.close()
    assert [d["brevity"] for d in easy] == [1.0, 1.0, 0.0] and verl["brevity"] == 0.0
    assert verl["score"] == verl["overall"] == pytest.approx(CASES[2][3])


def brief_or_long(prompt: str, k: int) -> str:
    answer = "Radial nerve" if k % 2 else "it is most likely the radial nerve"
    return f"<think>wrist drop</think> <answer>{answer}</answer>"


def test_a_registered_component_is_in_the_trl_metrics_and_records(brevity, stub_url, tmp_path):
    run = scripted_run(tmp_path, stub_url, brief_or_long, 8)
    overall = run.trainer.reward_funcs[0]
    overall.composite.config.weights = BrevityWeights()  # the run's config, with the new weight field
    seen = []
    score = overall.composite.score_batch
    overall.composite.score_batch = lambda batch: seen.extend(score(batch)) or seen[-len(batch.parsed):]
    train(run)
    history = [h for h in run.trainer.state.log_history if "loss" in h]
    assert history[0]["rewards/brevity/mean"] == pytest.approx(sum(r.brevity for r in seen) / len(seen))
    assert 0 < history[0]["rewards/brevity/mean"] < 1  # half the scripted answers are brief
    records = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").open()]
    assert records and {r["brevity"] for r in records} == {0.0, 1.0}
    # What TRL trains on (and dynamic sampling filters by) is the composite overall itself, in TRL's float32.
    tail = seen[-len(records):]
    assert [r["overall"] for r in records] == [float(np.float32(x.overall)) for x in tail]


def test_the_guard_runs_once_per_sample_and_the_judge_loop_is_entered_once(stub_url, monkeypatch):
    guards, submits = [], []
    guard, submit = components.guard, Judge.submit
    monkeypatch.setattr(components, "guard", lambda *a: guards.append(a) or guard(*a))
    monkeypatch.setattr(Judge, "submit", lambda self, coro: submits.append(coro) or submit(self, coro))
    composite = CompositeReward(RewardConfig(judge=judge_config(stub_url)))
    responses = [f"<X_RAY> <think>r</think> <answer>{a}</answer>" for a in ("small pneumothorax", "YES", "effusion")]
    try:
        results = composite.score(responses, ["<X_RAY> Pneumothorax"] * 3)
        hops = len(submits)
    finally:
        composite.close()
    assert len(guards) == 3  # once per sample, for the judge and the embedder together
    assert hops == 1  # the batch's verdicts: one hand-off onto the judge's loop
    assert results[1].guard == "verdict_word" and results[0].judge_error is None
