"""`--serve` on a node (medix.serving): the command line and GPUs each vLLM server gets, checked on CPU, and
server groups run with the loopback stub as the child process: started together, one log each, all stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from pydantic import ValidationError

from medix.config import ServeConfig
from medix.errors import MedixError
from medix.eval.config import EvalConfig
from medix.serving import ServerGroup, ServerLaunch, plan_servers
from medix.testing.judge_server import free_port

PY = sys.executable


def test_one_node_of_eight_gpus_policy_on_six_judge_on_two(tmp_path):
    policy = plan_servers("policy", "MediX-R1-8B", ServeConfig(gpus=[0, 1, 2, 3, 4, 5], data_parallel=6), tmp_path)
    judge = plan_servers("judge", "Qwen/Qwen3-14B", ServeConfig(
        gpus=[6, 7], tensor_parallel=2, port=8100, gpu_memory_utilization=0.85, max_model_len=8192,
        extra_args=["--enable-prefix-caching"]), tmp_path)
    assert [p.env for p in policy] == [{"CUDA_VISIBLE_DEVICES": str(k)} for k in range(6)]
    assert [p.url for p in policy] == [f"http://127.0.0.1:{8000 + k}/v1" for k in range(6)]
    assert [p.log_path for p in policy] == [tmp_path / f"policy-{k}.log" for k in range(6)]
    assert policy[3].command == [PY, "-m", "vllm.entrypoints.openai.api_server", "--model", "MBZUAI/MediX-R1-8B",
                                 "--served-model-name", "MBZUAI/MediX-R1-8B", "MediX-R1-8B", "--host", "127.0.0.1",
                                 "--port", "8003", "--tensor-parallel-size", "1"]
    (only,) = judge
    assert only.env == {"CUDA_VISIBLE_DEVICES": "6,7"} and only.url == "http://127.0.0.1:8100/v1"
    assert only.command[3:] == ["--model", "Qwen/Qwen3-14B", "--served-model-name", "Qwen/Qwen3-14B", "--host",
                                "127.0.0.1", "--port", "8100", "--tensor-parallel-size", "2",
                                "--gpu-memory-utilization", "0.85", "--max-model-len", "8192", "--enable-prefix-caching"]


def test_default_gpus_follow_the_layout_and_a_wrong_list_is_refused():
    assert ServeConfig(tensor_parallel=2, data_parallel=4).devices == list(range(8))
    with pytest.raises(ValidationError, match=r"gpus lists 3 device\(s\) \[0, 1, 2\], but tensor_parallel 2 × "
                                              r"data_parallel 1 = 2"):
        ServeConfig(gpus=[0, 1, 2], tensor_parallel=2)


def test_serve_flags_reach_the_config(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import medix.eval.runner
    from medix.cli import app

    seen = {}
    monkeypatch.setattr(medix.eval.runner, "run_eval", lambda cfg, *a, **k: seen.setdefault("cfg", cfg) and
                        medix.eval.runner.RunResult(tmp_path))
    args = ["eval", "run", "--model", "MediX-R1-8B", "--backend", "openai", "--serve", "--serve-gpus", "0,1,2,3",
            "--serve-data-parallel", "2", "--serve-tensor-parallel", "2", "--serve-max-model-len", "6144",
            "--serve-arg=--enable-prefix-caching", "--judge-backend", "openai", "--judge-serve-gpus", "4,5,6,7",
            "--judge-serve-data-parallel", "4", "--judge-serve-gpu-memory", "0.8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert cfg.serve and cfg.policy_server.gpus == [0, 1, 2, 3] and cfg.policy_server.data_parallel == 2
    assert cfg.policy_server.tensor_parallel == 2 and cfg.policy_server.max_model_len == 6144
    assert cfg.policy_server.extra_args == ["--enable-prefix-caching"]
    assert cfg.judge_server.gpus == [4, 5, 6, 7] and cfg.judge_server.data_parallel == 4
    assert cfg.judge_server.gpu_memory_utilization == 0.8 and cfg.judge_server.port == 8100
    seen.clear()
    result = CliRunner().invoke(app, ["eval", "run", "--model", "m", "--base-url", "http://a:1/v1",
                                      "--base-url", "http://b:2/v1", "--judge-url", "http://c:3/v1"])
    assert seen["cfg"].base_urls == ["http://a:1/v1", "http://b:2/v1"] and seen["cfg"].judge_server is None
    assert seen["cfg"].judge.base_urls == ["http://c:3/v1"]


def test_serve_with_a_backend_that_uses_no_server_is_refused():
    with pytest.raises(ValidationError, match="add --backend openai"):
        EvalConfig(model="m", serve=True)
    with pytest.raises(ValidationError, match="add --judge-backend openai"):
        EvalConfig(model="m", backend="openai", serve=True, judge_server=ServeConfig())


def test_serve_without_vllm_is_one_clear_line(tmp_path):
    if __import__("importlib").util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    from medix.eval.runner import run_eval, sample_dir

    cfg = EvalConfig(model="MediX-R1-8B", backend="openai", serve=True, tasks=["mmlu_anatomy"],
                     data_dir=str(sample_dir()), output_dir=str(tmp_path / "run"))
    with pytest.raises(MedixError, match=r"--serve starts vLLM, which is not installed here: pip install "
                                         r"'medix\[vllm\]'.*--base-url / --judge-url"):
        run_eval(cfg)


def _stub_launch(name: str, tmp_path, role: str = "policy", env: dict | None = None) -> ServerLaunch:
    port = free_port()
    command = ["sh", "-c", f'echo "gpus=$CUDA_VISIBLE_DEVICES"; exec {PY} -m medix.testing.judge_server '
               f'--port {port} --role {role} --latency 0']
    return ServerLaunch(name, command, env or {"CUDA_VISIBLE_DEVICES": name[-1]}, f"http://127.0.0.1:{port}/v1",
                        tmp_path / "logs" / f"{name}.log")


def _pids(group: ServerGroup) -> list[int]:
    return [s.process.pid for s in group.servers]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_eval_serve_runs_each_phase_on_its_servers_and_stops_them(tmp_path, monkeypatch):
    import medix.serving
    from medix.config import JudgeConfig
    from medix.eval.runner import run_eval, sample_dir

    started = []

    def loopback(role, model, spec, log_dir):  # the plan of the real vLLM launch, with the stub as the child
        plan = [_stub_launch(f"{role}-{k}", tmp_path, role, launch.env)
                for k, launch in enumerate(plan_servers(role, model, spec, log_dir))]
        started.extend(plan)
        return plan

    monkeypatch.setattr(medix.serving, "plan_servers", loopback)
    monkeypatch.setattr(medix.serving, "require_vllm", lambda: None)
    cfg = EvalConfig(model="stub-policy", backend="openai", serve=True, tasks=["mmlu_anatomy"], limit=4,
                     data_dir=str(sample_dir()), output_dir=str(tmp_path / "run"), bootstrap=0, protocol="medix",
                     policy_server=ServeConfig(gpus=[2, 3], data_parallel=2), judge_server=ServeConfig(data_parallel=2),
                     judge=JudgeConfig(backend="openai", model="stub-judge", max_tokens=8))
    result = run_eval(cfg)
    assert not result.failures and result.scores["tasks"]["mmlu_anatomy"]["n"] == 4
    assert [s.name for s in started] == ["policy-0", "policy-1", "judge-0", "judge-1"]
    assert cfg.base_urls == [s.url for s in started[:2]] and cfg.judge.base_urls == [s.url for s in started[2:]]
    logs = {s.name: s.log_path.read_text() for s in started}
    assert "gpus=2" in logs["policy-0"] and "gpus=3" in logs["policy-1"] and "gpus=0" in logs["judge-0"]
    import httpx

    for launch in started:  # every server stopped when its phase ended
        with pytest.raises(httpx.HTTPError):
            httpx.get(launch.url + "/models", timeout=1)


def test_a_server_that_fails_to_start_stops_the_others(tmp_path):
    good = _stub_launch("policy-0", tmp_path)
    bad = ServerLaunch("policy-1", [PY, "-c", "import sys; print('CUDA out of memory'); sys.exit(3)"], {},
                       f"http://127.0.0.1:{free_port()}/v1", tmp_path / "logs" / "policy-1.log")
    group = ServerGroup([good, bad], startup_timeout_s=60)
    with pytest.raises(MedixError, match=r"(?s)exited with code 3.*policy-1.log.*CUDA out of memory"):
        group.__enter__()
    assert all(s.process.poll() is not None for s in group.servers)


GROUP_SCRIPT = """
import sys, time
from pathlib import Path
from medix.serving import ServerGroup, ServerLaunch
ports, out = sys.argv[1:3], Path(sys.argv[3])
launches = [ServerLaunch(f"policy-{k}", [sys.executable, "-m", "medix.testing.judge_server", "--port", p], {},
                         f"http://127.0.0.1:{p}/v1", out / f"policy-{k}.log") for k, p in enumerate(ports)]
with ServerGroup(launches, 60) as group:
    print("ready", *[s.process.pid for s in group.servers], flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_every_child_is_stopped_on_sigterm_and_ctrl_c(tmp_path, sig):
    script = tmp_path / "group.py"
    script.write_text(GROUP_SCRIPT)
    proc = subprocess.Popen([PY, str(script), str(free_port()), str(free_port()), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    children = []
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready"), line
        children = [int(pid) for pid in line.split()[1:]]
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(pid) for pid in children), "a server outlived medix"
    finally:
        proc.kill()
        for pid in children:
            if not _gone(pid):
                os.killpg(pid, signal.SIGKILL)
