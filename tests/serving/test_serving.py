"""`--serve` on a node (medix.serving): the one vLLM server each model gets per phase, its command line and GPUs,
checked on CPU; the phases run with the loopback stub as the child process. The real vLLM:
tests/serving/test_vllm_engine.py."""

from __future__ import annotations

import json
import sys

import httpx
import pytest
from pydantic import ValidationError

from medix.errors import MedixError
from medix.eval.config import EvalConfig
from medix.serving.config import ServeConfig
from medix.serving.fit import ContextFit, image_token_bound, overflow_error
from medix.serving.layout import ServerLaunch, plan_server
from medix.testing.stub_server import free_port

PY = sys.executable


def test_one_node_of_eight_gpus_policy_on_six_judge_on_two(tmp_path):
    policy = plan_server("policy", "MediX-R1-8B", ServeConfig(gpus=[0, 1, 2, 3, 4, 5], data_parallel_size=6,
                                                              api_server_count=4), tmp_path)
    judge = plan_server("judge", "Qwen/Qwen3-14B", ServeConfig(
        gpus=[6, 7], tensor_parallel_size=2, port=8100, gpu_memory_utilization=0.85, max_model_len=8192,
        extra_args=["--enable-prefix-caching"]), tmp_path)
    # One process and one endpoint per model: vLLM balances its six replicas itself.
    assert policy.env == {"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5"} and policy.url == "http://127.0.0.1:8000/v1"
    assert policy.log_path == tmp_path / "policy.log"
    assert policy.command == [PY, "-m", "vllm.entrypoints.openai.api_server", "--model", "MBZUAI/MediX-R1-8B",
                              "--served-model-name", "MBZUAI/MediX-R1-8B", "MediX-R1-8B", "--host", "127.0.0.1",
                              "--port", "8000", "--data-parallel-size", "6", "--api-server-count", "4"]
    assert judge.env == {"CUDA_VISIBLE_DEVICES": "6,7"} and judge.url == "http://127.0.0.1:8100/v1"
    assert judge.command[3:] == ["--model", "Qwen/Qwen3-14B", "--served-model-name", "Qwen/Qwen3-14B", "--host",
                                 "127.0.0.1", "--port", "8100", "--tensor-parallel-size", "2",
                                 "--gpu-memory-utilization", "0.85", "--max-model-len", "8192",
                                 "--enable-prefix-caching"]


def test_a_fit_fills_what_the_spec_leaves_unset(tmp_path):
    fit = ContextFit(max_model_len=4608, images=2)
    fitted = plan_server("policy", "m", ServeConfig(), tmp_path, fit).command
    assert fitted[fitted.index("--max-model-len") + 1] == "4608"
    assert json.loads(fitted[fitted.index("--limit-mm-per-prompt") + 1]) == {"image": 2, "video": 0}
    own = plan_server("policy", "m", ServeConfig(max_model_len=2048, extra_args=[
        '--limit-mm-per-prompt={"image": 1}']), tmp_path, fit).command
    assert own[own.index("--max-model-len") + 1] == "2048" and own.count("--limit-mm-per-prompt") == 0


def test_default_gpus_follow_the_layout_and_a_wrong_list_is_refused():
    assert ServeConfig(tensor_parallel_size=2, data_parallel_size=4).devices == list(range(8))
    assert ServeConfig.model_validate({"tensor_parallel": 2, "data_parallel": 3}).devices == list(range(6))  # old names
    with pytest.raises(ValidationError, match=r"gpus lists 3 device\(s\) \[0, 1, 2\], but tensor_parallel_size 2 × "
                                              r"data_parallel_size 1 = 2"):
        ServeConfig(gpus=[0, 1, 2], tensor_parallel_size=2)


class QwenLike:  # the attributes a Qwen-VL image processor has
    def __init__(self, max_pixels):
        self.patch_size, self.merge_size, self.size = 16, 2, {"shortest_edge": 65536, "longest_edge": max_pixels}


def test_image_token_bound_follows_the_processor_and_the_protocol_side():
    # Qwen3-VL's own processor: up to 16,777,216 pixels → 16,384 tokens of 32 × 32; medix sends ≤ 1536 px a
    # side, which smart resize rounds to 48 blocks (+ rounding): 49² = 2,401.
    assert image_token_bound(QwenLike(16777216), None) == 16384
    assert image_token_bound(QwenLike(16777216), 1536) == 49 * 49
    assert image_token_bound(QwenLike(262144), 1536) == 256  # the paper's training bound is the smaller one
    assert image_token_bound(object(), 1536) is None


def test_a_context_overflow_is_named_with_the_item_and_the_flag():
    said = ("server http://127.0.0.1:8000/v1, model 'm': BadRequestError: HTTP 400: This model's maximum context "
            "length is 1024 tokens. However, your prompt contains 3000 input tokens")
    named = overflow_error(said, "item-7", 512)
    assert named.startswith("item item-7 does not fit the policy server's context of 1024 tokens (a prompt of "
                            "3000 tokens with its images, + 512 new tokens)")
    assert "--serve-max-model-len" in named and "--max-new-tokens" in named and said in named
    engine = "HTTP 400: Input length (140) exceeds model's maximum context length (64)."  # vLLM's engine check
    assert overflow_error(engine, "3", 8).startswith("item 3 does not fit the policy server's context of 64 tokens "
                                                     "(a prompt of 140 tokens with its images, + 8 new tokens)")
    assert overflow_error("HTTP 500: engine died", "x", 512) is None and overflow_error(None, "x", 512) is None


def test_serve_flags_reach_the_config(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import medix.eval.runner
    from medix.cli import app

    seen = {}
    monkeypatch.setattr(medix.eval.runner, "run_eval", lambda cfg, *a, **k: seen.setdefault("cfg", cfg) and
                        medix.eval.runner.RunResult(tmp_path))
    args = ["eval", "run", "--model", "MediX-R1-8B", "--backend", "openai", "--serve", "--serve-gpus", "0,1,2,3",
            "--serve-data-parallel", "2", "--serve-tensor-parallel", "2", "--serve-max-model-len", "6144",
            "--serve-api-servers", "3", "--serve-arg=--enable-prefix-caching", "--judge-backend", "openai",
            "--judge-serve-gpus", "4,5,6,7", "--judge-serve-data-parallel", "4", "--judge-serve-gpu-memory", "0.8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert cfg.serve and cfg.policy_server.gpus == [0, 1, 2, 3] and cfg.policy_server.data_parallel_size == 2
    assert cfg.policy_server.tensor_parallel_size == 2 and cfg.policy_server.max_model_len == 6144
    assert cfg.policy_server.api_server_count == 3 and cfg.policy_server.extra_args == ["--enable-prefix-caching"]
    assert cfg.judge_server.gpus == [4, 5, 6, 7] and cfg.judge_server.data_parallel_size == 4
    assert cfg.judge_server.gpu_memory_utilization == 0.8 and cfg.judge_server.port == 8100
    seen.clear()
    result = CliRunner().invoke(app, ["eval", "run", "--model", "m", "--backend", "openai", "--base-url",
                                      "http://a:1/v1", "--base-url", "http://b:2/v1", "--judge-backend", "openai",
                                      "--judge-url", "http://c:3/v1"])
    assert seen["cfg"].base_urls == ["http://a:1/v1", "http://b:2/v1"] and seen["cfg"].judge_server is None
    assert seen["cfg"].judge.base_urls == ["http://c:3/v1"]


def test_serve_with_a_backend_that_uses_no_server_is_refused():
    with pytest.raises(ValidationError, match="add --backend openai"):
        EvalConfig(model="m", serve=True)
    with pytest.raises(ValidationError, match="add --judge-backend openai"):
        EvalConfig(model="m", backend="openai", serve=True, judge_server=ServeConfig())


def test_serve_without_vllm_is_one_clear_line(tmp_path, monkeypatch):
    import importlib.util

    from medix.eval.runner import run_eval, sample_dir

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    cfg = EvalConfig(model="MediX-R1-8B", backend="openai", serve=True, tasks=["mmlu_anatomy"],
                     data_dir=str(sample_dir()), output_dir=str(tmp_path / "run"), policy_server=ServeConfig(
                         max_model_len=4096, extra_args=["--limit-mm-per-prompt={}"]))
    with pytest.raises(MedixError, match=r"--serve starts vLLM, which is not installed here: pip install "
                                         r"'medix\[vllm\]'.*--base-url / --judge-url"):
        run_eval(cfg)


def test_eval_serve_runs_each_phase_on_its_server_and_stops_it(tmp_path, monkeypatch):
    import medix.serving.layout
    from medix.judge.config import JudgeConfig
    from medix.eval.runner import run_eval, sample_dir

    started, real_plan = [], plan_server

    def loopback(role, model, spec, log_dir, fit=ContextFit()):  # the real plan, with the stub as the child
        planned, port = real_plan(role, model, spec, log_dir, fit), free_port()
        command = ["sh", "-c", f'echo "gpus=$CUDA_VISIBLE_DEVICES"; exec {PY} -m medix.testing.stub_server '
                   f'--port {port} --role {role} --latency 0']
        started.append((planned, ServerLaunch(role, command, planned.env, f"http://127.0.0.1:{port}/v1",
                                              planned.log_path)))
        return started[-1][1]

    monkeypatch.setattr(medix.serving.layout, "plan_server", loopback)
    monkeypatch.setattr(medix.serving.engines, "require_vllm", lambda: None)
    cfg = EvalConfig(model="stub-policy", backend="openai", serve=True, tasks=["mmlu_anatomy"], limit=4,
                     data_dir=str(sample_dir()), output_dir=str(tmp_path / "run"), bootstrap=0, protocol="medix",
                     policy_server=ServeConfig(gpus=[2, 3], data_parallel_size=2, max_model_len=2048,
                                               extra_args=["--limit-mm-per-prompt={}"]),
                     judge_server=ServeConfig(data_parallel_size=2),
                     judge=JudgeConfig(backend="openai", model="stub-judge", max_tokens=8))
    result = run_eval(cfg)
    assert not result.failures and result.scores["tasks"]["mmlu_anatomy"]["n"] == 4
    assert [s.name for _, s in started] == ["policy", "judge"]
    assert "--data-parallel-size" in started[0][0].command and started[0][0].env == {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert cfg.base_urls == [started[0][1].url] and cfg.judge.base_urls == [started[1][1].url]
    logs = {s.name: s.log_path.read_text() for _, s in started}
    assert "gpus=2,3" in logs["policy"] and "gpus=0,1" in logs["judge"]
    for _, launch in started:  # every server stopped when its phase ended
        with pytest.raises(httpx.HTTPError):
            httpx.get(launch.url + "/models", timeout=1)
