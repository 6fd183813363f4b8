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


def _captured_config(monkeypatch, tmp_path, yaml_text, *flags):
    """Run `medix eval run` in-process with run_eval replaced, and return the EvalConfig it would use."""
    from typer.testing import CliRunner

    import medix.eval.runner
    from medix.cli import app

    seen = {}

    def fake_run_eval(cfg, progress=None, new_judge=False):
        seen["cfg"] = cfg
        return medix.eval.runner.RunResult(tmp_path)

    monkeypatch.setattr(medix.eval.runner, "run_eval", fake_run_eval)
    config = tmp_path / "eval.yaml"
    config.write_text(yaml_text)
    result = CliRunner().invoke(app, ["eval", "run", "--config", str(config), *flags])
    return result, seen.get("cfg")


def test_eval_config_file_values_survive_flags_left_at_default(monkeypatch, tmp_path):
    yaml_text = ("model: m\nbackend: openai\nbase_url: http://127.0.0.1:9/v1\nprotocol: medix\nmax_new_tokens: 77\n"
                 "judge:\n  backend: openai\n  model: qwen/qwen3-14b\n")
    result, cfg = _captured_config(monkeypatch, tmp_path, yaml_text, "--model", "m")
    assert result.exit_code == 0, result.output
    assert cfg.backend == "openai" and cfg.base_urls == ["http://127.0.0.1:9/v1"] and cfg.max_new_tokens == 77
    assert cfg.protocol.name == "medix" and cfg.format_prompt is True
    assert cfg.judge.backend == "openai" and cfg.judge.model == "qwen/qwen3-14b" and cfg.judge.max_tokens == 512
    result, cfg = _captured_config(monkeypatch, tmp_path, yaml_text, "--model", "m", "--backend", "local",
                                   "--judge-model", "other", "--max-new-tokens", "5")
    assert cfg.backend == "local" and cfg.judge.model == "other" and cfg.max_new_tokens == 5  # given flags win
    assert cfg.judge.backend == "openai"


def test_eval_defaults_follow_the_protocol(monkeypatch, tmp_path):
    _, paper = _captured_config(monkeypatch, tmp_path, "model: m\n", "--model", "m")
    assert paper.protocol.name == "paper" and paper.max_new_tokens == 2048 and paper.format_prompt is False
    assert paper.judge.thinking == "off"
    _, medix_cfg = _captured_config(monkeypatch, tmp_path, "model: m\n", "--model", "m", "--protocol", "medix")
    assert medix_cfg.max_new_tokens == 1024 and medix_cfg.format_prompt is True


def test_eval_empty_phases_is_an_error(tmp_path):
    result = medix("eval", "run", "--model", "m", "--phases", "", "-o", str(tmp_path / "out"))
    assert result.returncode != 0 and "phases" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
