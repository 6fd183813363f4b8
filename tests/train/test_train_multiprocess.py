"""`accelerate launch` with 2 processes on CPU (torch.distributed over gloo) running `python -m medix train`:
the dapo recipe with dynamic sampling, a tiny random-weight policy saved to a folder, and a managed judge.

The judge is started the way a real run starts it (`judge_serve.enabled`, backend llamacpp → `python -m
llama_cpp.server ...`), with a stand-in `llama_cpp` package on PYTHONPATH that records which local rank
started it and runs the loopback judge stub instead. What this does and does not prove: docs/training.md,
"Multi-process runs".
"""

import json
import os
import subprocess
import sys

import httpx
import pytest

from helpers.distributed import lines
from medix.testing.stub_server import free_port
from medix.testing.tiny import tiny_text_lm

FAKE_LLAMA_SERVER = '''\
"""Stands in for llama-cpp-python's server: notes who started it, then serves the loopback judge stub."""
import os, sys
with open(os.environ["MEDIX_TEST_JUDGE_STARTS"], "a") as fh:
    fh.write(os.environ.get("LOCAL_RANK", "unset") + "\\n")
port = sys.argv[sys.argv.index("--port") + 1]
os.execv(sys.executable, [sys.executable, "-m", "medix.testing.stub_server", "--port", port, "--latency", "0"])
'''


@pytest.mark.slow
def test_two_processes_on_cpu_train_dapo_with_a_managed_judge(tmp_path):
    model, tokenizer = tiny_text_lm()
    model.save_pretrained(tmp_path / "policy")
    tokenizer.save_pretrained(tmp_path / "policy")
    rows = [{"id": f"s{i}", "problem": f"Question {i}: which nerve is injured in wrist drop?",
             "solution": "Radial nerve", "images": []} for i in range(8)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "prompt.jinja").write_text("{{ problem }}")
    (tmp_path / "fake" / "llama_cpp").mkdir(parents=True)
    (tmp_path / "fake" / "llama_cpp" / "__init__.py").write_text("")
    (tmp_path / "fake" / "llama_cpp" / "server.py").write_text(FAKE_LLAMA_SERVER)
    (tmp_path / "judge.gguf").write_text("the stub judge needs no weights")
    port, out = free_port(), tmp_path / "run"
    (tmp_path / "train.yaml").write_text(json.dumps({  # JSON is YAML
        "data": {"train": str(tmp_path / "d.jsonl"), "prompt_template": str(tmp_path / "prompt.jinja")},
        "model": {"name": str(tmp_path / "policy")},
        "algorithm": {"recipe": "dapo", "dynamic_sampling": {"max_attempts": 2, "on_exhausted": "pad"}},
        "rollout": {"num_generations": 4, "max_completion_tokens": 8},
        "reward": {"judge": {"backend": "openai", "model": str(tmp_path / "judge.gguf"), "cache": False}},
        "judge_serve": {"enabled": True, "backend": "llamacpp", "port": port, "startup_timeout_s": 120},
        "trainer": {"output_dir": str(out), "max_steps": 2, "save_steps": 2, "per_device_train_batch_size": 4,
                    "learning_rate": 0.01}}))
    starts = tmp_path / "judge_starts.txt"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MEDIX_TEST_JUDGE_STARTS": str(starts),
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")])}
    # --multi_gpu picks accelerate's torchrun launcher; with no GPU visible each process runs on CPU over gloo.
    # (`--cpu --num_processes 2` would start ONE process: accelerate's simple launcher.)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()),
               "-m", "medix", "train", "--config", str(tmp_path / "train.yaml")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    said = " ".join((done.stdout + done.stderr).split())  # rich wraps long lines
    assert said.count("trained 2 steps") == 2  # both processes got to the end of `medix train`

    assert starts.read_text().split() == ["0"]  # one judge, started by local rank 0; rank 1 waited for it
    with pytest.raises(httpx.ConnectError):  # and stopped at the end
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)

    sampling = lines(out / "dynamic_sampling.jsonl")
    assert [s["step"] for s in sampling] == [1, 2]
    for s in sampling:
        assert len(s["rounds_by_process"]) == 2 and len(set(s["rounds_by_process"])) == 1  # the same rounds
        assert len(s["trained"]) == 2  # one group per process
    metrics = lines(out / "metrics.jsonl")
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2]  # one line per step: written by one process
    assert len(metrics) == 3 and "train_runtime" in metrics[-1]
    assert [m["dynamic_sampling/rounds"] for m in metrics if "loss" in m] == [s["rounds"] for s in sampling]
    assert all(m["monitor/guard/no_answer_block"] is not None for m in metrics if "loss" in m)

    checkpoint = out / "checkpoint-2"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint-")) == ["checkpoint-2"]
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "reward_monitor.json").is_file()
    for rank in (0, 1):  # per-process random states, so a resume restores both processes
        assert (checkpoint / f"rng_state_{rank}.pth").is_file()
        assert (checkpoint / f"dynamic_sampling_rng_{rank}.json").is_file()
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 2
    assert json.loads((out / "summary.json").read_text())["global_step"] == 2
    assert (out / "final" / "model.safetensors").is_file()
