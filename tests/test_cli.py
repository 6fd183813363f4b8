"""`medix reward score` end to end on the embedded default, and its error messages."""

import json
import subprocess
import sys

import pytest

from conftest import REPO

FIELDS = ("overall", "format", "modality", "accuracy_llm", "accuracy_embed", "judge_error")


def medix(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "medix", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.mark.slow
def test_reward_score_embedded_default(tmp_path):
    out = tmp_path / "scored.jsonl"
    result = medix("reward", "score", "--input", "examples/responses.jsonl", "--output", str(out))
    assert result.returncode == 0, result.stderr
    inputs = [json.loads(line) for line in (REPO / "examples" / "responses.jsonl").open()]
    rows = [json.loads(line) for line in out.open()]
    assert [r["id"] for r in rows] == [r["id"] for r in inputs]  # input order, none lost or duplicated
    for row, original in zip(rows, inputs):
        assert all(field in row for field in FIELDS)
        assert row["response"] == original["response"] and row["solution"] == original["solution"]
        assert row["judge"]["model"] == "smollm2-135m" and row["judge"]["method"] == "logits"
        assert row["judge_error"] is None and 0.0 <= row["overall"] <= 1.0
    assert rows[0]["overall"] == 1.0  # exact match, well formed, right modality
    assert "mean" in result.stdout and "overall" in result.stdout


@pytest.mark.parametrize("content,message", [
    ('{"response": "x"}\n', "row 1, field 'solution': missing"),
    ('{"response": "x", "solution": "a"}\n{"solution": "a", "response": 3}\n', "row 2, field 'response'"),
    ('{"response": "x", "solution": "a"}\nnot json\n', "row 2: not valid JSON"),
    ("", "no rows to score"),
])
def test_bad_input_is_a_clear_error(tmp_path, content, message):
    bad = tmp_path / "in.jsonl"
    bad.write_text(content)
    result = medix("reward", "score", "--input", str(bad), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2
    assert message in result.stderr.replace("\n", " ") and "Traceback" not in result.stderr
    assert not (tmp_path / "o.jsonl").exists()  # validated before anything is written


def test_bad_config_and_missing_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("weights:\n  judge: -1\n")
    result = medix("reward", "score", "-i", "examples/responses.jsonl", "-o", str(tmp_path / "o"), "-c", str(cfg))
    assert result.returncode == 2 and "weights.judge" in result.stderr
    result = medix("reward", "score", "-i", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o"))
    assert result.returncode == 2 and "data file not found" in result.stderr


def test_judge_serve_without_engine_names_the_extra():
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed here")
    result = medix("judge", "serve", "--model", "smollm2-135m", "--backend", "llamacpp")
    assert result.returncode == 2 and "medix[llamacpp]" in result.stderr
