"""`medix reward score` end to end on the embedded default, and its error messages."""

import json
import os
from pathlib import Path

import pytest

from helpers import REPO
from helpers.cli_runner import medix
from medix.errors import MedixError

FIELDS = ("overall", "format", "modality", "accuracy_llm", "accuracy_embed", "judge_error")


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


ROWS = [{"id": i, "response": "<answer>x</answer>", "solution": "x"} for i in range(3)]


def _rows_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


class _FailingJudgeComposite:
    """Stands in for CompositeReward (no models): the judge fails on every second row."""

    judge_identity = {"backend": "openai", "model": "m"}

    def __init__(self, config):
        pass

    def score(self, responses, solutions, problems, has_image):
        from medix.rewards.composite import RewardResult

        failed = "circuit open: http://127.0.0.1:9/v1 did not answer"
        return [RewardResult(None if i % 2 == 0 else 1.0,
                             {"accuracy_llm": None if i % 2 == 0 else 1.0, "accuracy_embed": 1.0, "modality": None,
                              "format": 1.0},
                             {"judge_error": failed if i % 2 == 0 else None, "similarity": 1.0}, None, "x")
                for i in range(len(responses))]

    def close(self):
        pass


def test_reward_score_exits_nonzero_on_judge_errors(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import medix.rewards.composite
    from medix.cli import app

    monkeypatch.setattr(medix.rewards.composite, "CompositeReward", _FailingJudgeComposite)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["reward", "score", "-i", str(_rows_file(tmp_path)), "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert len(out.read_text().splitlines()) == 3  # every row written first
    last = result.output.strip().splitlines()[-1]
    assert "2 of 3 rows have judge_error" in last and "circuit open" in result.output


@pytest.mark.parametrize("make_output,overwrite,message", [
    (lambda tmp: tmp / "in.jsonl", False, "is the input file"),
    (lambda tmp: tmp / "in.jsonl", True, "is the input file"),
    (lambda tmp: tmp / "exists.jsonl", False, "already exists; pass --overwrite"),
    (lambda tmp: tmp, False, "is a directory"),
    (lambda tmp: tmp / "a-file.txt" / "out.jsonl", False, "is not a directory"),
])
def test_reward_score_refuses_bad_outputs_before_models_load(tmp_path, make_output, overwrite, message):
    source = _rows_file(tmp_path)
    (tmp_path / "exists.jsonl").write_text("keep me\n")
    (tmp_path / "a-file.txt").write_text("")
    output = make_output(tmp_path)
    result = medix("reward", "score", "-i", str(source), "-o", str(output), *(["--overwrite"] if overwrite else []))
    assert result.returncode == 2 and message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr
    assert source.read_text().count("\n") == 3 and (tmp_path / "exists.jsonl").read_text() == "keep me\n"


def test_read_only_output_folder_is_refused_before_models_load(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import medix.files
    import medix.rewards.composite
    from medix.cli import app

    built = []
    monkeypatch.setattr(medix.rewards.composite, "CompositeReward", lambda cfg: built.append(cfg))
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: let the probe meet what a read-only folder answers

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(medix.files.tempfile, "TemporaryFile", refuse)
    try:
        result = CliRunner().invoke(app, ["reward", "score", "-i", str(_rows_file(tmp_path)),
                                          "-o", str(folder / "out.jsonl")])
    finally:
        folder.chmod(0o755)
    assert isinstance(result.exception, MedixError), result.exception
    assert "ro is not writable (Permission denied)" in str(result.exception) and not built


GOOD_ROW = b'{"id": "1", "problem": "q", "solution": "a", "response": "a"}\n'


def test_reward_score_non_utf8_input_is_one_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(GOOD_ROW + b'{"response": "\x80", "solution": "a"}\n')
    result = medix("reward", "score", "-i", str(path), "-o", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and "in.jsonl, row 2: not UTF-8 text" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
