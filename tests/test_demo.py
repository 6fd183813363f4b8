"""`medix demo` end to end on the embedded models (SmolLM2-135M policy and judge, MiniLM embedder)."""

import json
import subprocess
import sys

import pytest

from conftest import REPO


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
    assert "before" in result.stdout and "after" in result.stdout
