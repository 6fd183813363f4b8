"""Against a real OpenAI-compatible server: `transformers serve` (the `serving` extra of transformers) on
127.0.0.1, serving the embedded SmolLM2 folder, driven the way a user drives medix: `medix infer --server`,
`medix reward score` with an openai judge, `medix eval run --sample` on 2 items of one text task.

That server pins the model to the folder it was started with (any other name is a 400 whose reason is in
the reply body) and ignores `logprobs` / `top_logprobs`, as many servers do: both must reach the user as one
clear line. On a shared 2-core machine the server runs one thread (OMP_NUM_THREADS=1), which is 3-5x faster
there than two contended ones; tokens are kept few, so the module takes about 2 minutes.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from helpers import cli_runner
from medix.models import smollm2_folder
from medix.serving.process import ManagedServer
from medix.testing.stub_server import free_port

pytestmark = pytest.mark.slow
NOTE = "returned no logprobs"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = str(smollm2_folder())
    # transformers 5.17's `serve` lists models from the hub cache folder and answers 500 while it does not exist.
    hub_cache = tmp_path_factory.mktemp("hub-cache")
    port = free_port()
    command = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve", "--host",
               "127.0.0.1", "--port", str(port), "--device", "cpu", folder]
    managed = ManagedServer(command, f"http://127.0.0.1:{port}/v1", startup_timeout_s=180,
                            env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_CACHE": str(hub_cache)})
    with managed:
        yield {"url": managed.base_url, "model": folder, "server": managed}
    assert managed.process.poll() is not None  # stopped


def medix(*args, timeout=240):
    return cli_runner.medix(*args, timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_infer_through_the_server_and_a_wrong_model_name(server):
    ok = medix("infer", "--server", server["url"], "--model", server["model"], "--question",
               "What does a widened mediastinum suggest?", "--max-new-tokens", "6", "--json")
    assert ok.returncode == 0, ok.stderr
    reply = json.loads(ok.stdout)
    assert reply["raw"].strip() and set(reply) == {"modality", "reasoning", "answer", "raw"}
    wrong = medix("infer", "--server", server["url"], "--model", "smollm2-135m", "--question", "q?")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert (f"server {server['url']}, model 'smollm2-135m': BadRequestError: HTTP 400: Server is pinned to "
            f"'{server['model']}'; requested 'smollm2-135m'.") in one_line(wrong.stderr)


def test_reward_score_with_the_server_as_judge(server, tmp_path):
    rows = [{"id": "a", "solution": "<X_RAY> Pneumonia", "response": "<X_RAY> <think>t</think> <answer>lobar "
             "pneumonia</answer>"}, {"id": "b", "solution": "<CT_SCAN> Appendicitis", "response": "<CT_SCAN> "
             "<think>t</think> <answer>acute appendicitis</answer>"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "reward.yaml").write_text(
        f"judge:\n  backend: openai\n  model: {server['model']}\n  base_urls: [{server['url']}]\n"
        "  max_tokens: 2\n  max_retries: 0\n  timeout_s: 120\n  cache: false\n")
    result = medix("reward", "score", "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                   "-c", str(tmp_path / "reward.yaml"))
    scored = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    errors = [r for r in scored if r.get("judge_error")]
    assert len(scored) == 2 and result.returncode == (1 if errors else 0), result.stderr
    assert one_line(result.stderr).count(NOTE) == 1 and "p_yes: unavailable" in one_line(result.stderr)
    assert all("Server is pinned" not in (r.get("judge_error") or "") for r in scored)  # the right name was asked


def test_eval_run_sample_through_the_server(server, tmp_path):
    (tmp_path / "eval.yaml").write_text("judge_rounds: 1\njudge:\n  max_tokens: 4\n  max_retries: 0\n"
                                        "  timeout_s: 120\n")
    out = tmp_path / "run"
    result = medix("eval", "run", "--sample", "--tasks", "mmlu_anatomy", "--limit", "2", "--config",
                   str(tmp_path / "eval.yaml"), "--backend", "openai", "--base-url", server["url"],
                   "--model", server["model"], "--max-new-tokens", "4", "--judge-backend", "openai",
                   "--judge-model", server["model"], "--judge-url", server["url"], "-o", str(out), timeout=400)
    gens = [json.loads(line) for line in (out / "generations" / "mmlu_anatomy.jsonl").read_text().splitlines()]
    assert len(gens) == 2 and all(g["raw"] is not None and g["error"] is None for g in gens), result.stderr
    (folder,) = (out / "judgments").iterdir()
    judged = [json.loads(line) for line in (folder / "mmlu_anatomy.jsonl").read_text().splitlines()]
    assert len(judged) == 2 and all(j["judge"]["p_yes"] == "unavailable" for j in judged)
    scores = json.loads((out / "scores.json").read_text())
    failed = scores["failures"]["judge"]
    assert result.returncode == (1 if failed else 0), result.stderr
    assert one_line(result.stderr).count(NOTE) == 1
    assert f"{failed} judge failure(s) and 0 generation failure(s)" in result.stdout
