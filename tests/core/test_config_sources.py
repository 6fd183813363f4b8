"""Flags over YAML, without the CLI: `EvalConfig.from_sources`, `JudgeConfig.from_sources`, `load_reward_config`.

The rule (docs/eval.md, `medix eval run --config`): a YAML's values stand unless the flag was given; a flag left at
its default never wins. `flags` below are what the command passes: only the flags given, by parameter name."""

from __future__ import annotations

from pathlib import Path

import pytest

from medix.judge.config import JudgeConfig
from medix.rewards.config import load_reward_config
from medix.errors import MedixError
from medix.eval.config import EvalConfig
from medix.eval.flags import JUDGE_SERVER_PORT

FILE = """\
model: from-file
backend: openai
base_url: http://127.0.0.1:9/v1
protocol: medix
max_new_tokens: 77
tasks: [llm]
serve: true
policy_server: {gpus: [0], port: 8300}
judge_server: {gpus: [1], port: 8200}
judge: {backend: openai, model: qwen/qwen3-14b, api_key_env: FILE_KEY}
"""


@pytest.fixture
def eval_yaml(tmp_path) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(FILE)
    return path


def test_file_values_stand_when_no_flag_is_given(eval_yaml):
    cfg = EvalConfig.from_sources(eval_yaml, {})
    assert (cfg.model, cfg.backend, cfg.base_urls, cfg.protocol.name) == ("from-file", "openai",
                                                                          ["http://127.0.0.1:9/v1"], "medix")
    assert cfg.max_new_tokens == 77 and cfg.tasks == ["llm"] and cfg.format_prompt is True  # medix protocol's
    assert cfg.policy_server.port == 8300 and cfg.judge_server.port == 8200
    assert cfg.judge.model == "qwen/qwen3-14b" and cfg.judge.api_key_env == "FILE_KEY"
    assert cfg.judge.max_tokens == 512  # a partial judge section starts from the eval judge's defaults


def test_given_flags_win_field_by_field(eval_yaml):
    flags = {"model": "m", "tasks": "mmlu_anatomy,medqa", "phases": "generate, judge", "base_url": ["http://a/v1",
             "http://b/v1"], "no_format_prompt": True, "judge_model": "other", "judge_template": Path("t.jinja"),
             "output_dir": Path("out/x"), "limit": 3}
    cfg = EvalConfig.from_sources(eval_yaml, flags)
    assert cfg.model == "m" and cfg.tasks == ["mmlu_anatomy,medqa"] and cfg.phases == ["generate", "judge"]
    assert cfg.base_urls == ["http://a/v1", "http://b/v1"] and cfg.format_prompt is False and cfg.limit == 3
    assert cfg.output_dir == "out/x" and cfg.judge.template == "t.jinja"
    assert cfg.judge.model == "other" and cfg.judge.backend == "openai" and cfg.judge.api_key_env == "FILE_KEY"
    assert cfg.max_new_tokens == 77 and cfg.protocol.name == "medix"  # not given: the file's


def test_serve_flags_lay_out_servers(eval_yaml):
    cfg = EvalConfig.from_sources(None, {"model": "m", "backend": "openai", "serve": True, "serve_gpus": "2,3",
                                         "serve_tensor_parallel": 2, "serve_arg": ["--enforce-eager"],
                                         "judge_backend": "openai", "judge_serve_gpus": "4"})
    assert cfg.policy_server.gpus == [2, 3] and cfg.policy_server.tensor_parallel_size == 2
    assert cfg.policy_server.extra_args == ["--enforce-eager"] and cfg.policy_server.port == 8000
    assert cfg.judge_server.gpus == [4] and cfg.judge_server.port == JUDGE_SERVER_PORT == 8100
    # With a file: its judge_server.port stands unless --judge-serve-port is given; the flag moves it alone too.
    assert EvalConfig.from_sources(eval_yaml, {"judge_serve_gpus": "5"}).judge_server.port == 8200
    assert EvalConfig.from_sources(eval_yaml,
                                   {"judge_serve_gpus": "5", "judge_serve_port": 8500}).judge_server.port == 8500
    moved = EvalConfig.from_sources(eval_yaml, {"judge_serve_port": 8600}).judge_server
    assert moved.port == 8600 and moved.gpus == [1]
    # Without a judge_server to move, the port alone starts nothing.
    assert EvalConfig.from_sources(None, {"model": "m", "judge_serve_port": 8600}).judge_server is None


@pytest.mark.parametrize("flags,message", [
    ({"model": "m", "serve_gpus": "0,a"}, "--serve-gpus '0,a': give GPU ids separated by commas"),
    ({"model": "m", "judge_serve_gpus": "x"}, "--judge-serve-gpus 'x'"),
    ({"model": "m", "sample": Path("s"), "data_dir": Path("d")}, "--sample and --data-dir both choose the data"),
    ({"model": "m", "phases": ""}, "phases is empty"),
    ({"model": "m", "backend": "bogus"}, "unknown judge backend 'bogus'; known: local, openai"),
])
def test_bad_flags_are_named(flags, message):
    with pytest.raises(MedixError, match=message.replace("(", r"\(")):
        EvalConfig.from_sources(None, flags)


def test_the_sample_folder_is_the_data_dir():
    assert EvalConfig.from_sources(None, {"model": "m", "sample": Path("/bundled")}).data_dir == "/bundled"


def test_a_flag_without_a_place_is_refused():
    with pytest.raises(ValueError, match="not a flag of medix eval run: new_judge"):
        EvalConfig.from_sources(None, {"model": "m", "new_judge": True})


@pytest.mark.parametrize("text", ["reward:\n  judge: {model: file-judge, timeout_s: 5}\n",
                                  "judge: {model: file-judge, timeout_s: 5}\n",
                                  "model: file-judge\ntimeout_s: 5\n"])
def test_judge_section_of_any_config(tmp_path, text):
    path = tmp_path / "j.yaml"
    path.write_text(text)
    cfg = JudgeConfig.from_sources(path, {"backend": None, "model": None})
    assert cfg.model == "file-judge" and cfg.timeout_s == 5 and cfg.backend == "local"
    cfg = JudgeConfig.from_sources(path, {"backend": "openai", "base_urls": ["http://j/v1"]})
    assert cfg.model == "file-judge" and cfg.backend == "openai" and cfg.base_urls == ["http://j/v1"]


def test_judge_config_errors_name_the_file(tmp_path):
    path = tmp_path / "j.yaml"
    path.write_text("judge: {modle: x}\n")
    with pytest.raises(MedixError, match=r"j.yaml:\n  modle: unknown key"):
        JudgeConfig.from_sources(path, {})
    path.write_text("judge: [a]\n")
    with pytest.raises(MedixError, match="the judge section must be a mapping"):
        JudgeConfig.from_sources(path, {})


def test_reward_overrides_come_last(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("reward:\n  judge: {model: file-judge, timeout_s: 5}\n")
    cfg = load_reward_config(path, "paper", {"judge": {"model": "flag-judge"}})
    assert cfg.judge.model == "flag-judge" and cfg.judge.timeout_s == 5  # flag over file
    assert cfg.judge.backend == "openai" and cfg.embedder.model == "abhinand/MedEmbed-large-v0.1"  # the profile's
    assert load_reward_config(path).judge.model == "file-judge"


def test_yaml_config_not_utf8(tmp_path):
    path = tmp_path / "reward.yaml"
    path.write_bytes(b"weights:\n  judge: 0.5  # \xe9t\xe9\n")
    with pytest.raises(MedixError, match=r"reward.yaml, line 2: not UTF-8 text"):
        load_reward_config(path)
