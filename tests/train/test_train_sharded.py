"""Sharded training for real: `accelerate launch … -m medix train` with 2 CPU processes over gloo under DeepSpeed
ZeRO-3 and FSDP2, a tiny policy that writes well-formed answers (so the embedder and the judge really run), a
loopback judge, and a 90-second process-group timeout so a hang fails in seconds, not in 30 minutes.

What each test guards (docs/training.md, "What has run where"):
- ZeRO-3: the reward's embedder loads whole inside the armed zero.Init context (it loaded partitioned:
  "'weight' must be 2-D" at the first step); validation at step 1 runs on every rank (rank 0 alone used to
  generate and save, a collective the other rank never joined); best/ and final/ hold whole weights.
- FSDP2: trains, saves a loadable final policy, and resumes from its sharded checkpoint.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from medix.rewards.config import RewardConfig
from medix.models import load_embedder

from helpers.distributed import answering_policy, launch, lines

REPLY = "<OTHER> <think>The wrist cannot extend.</think><answer>The radial nerve</answer>"
QUESTIONS = [f"Question {i}: which nerve is injured in wrist drop?" for i in range(8)]
SOLUTIONS = ["Radial nerve", "Ulnar nerve", "Median nerve", "Axillary nerve"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("policy")
    answering_policy(folder, QUESTIONS, REPLY)
    return folder


def write_run(tmp_path, policy, stub, **trainer) -> tuple:
    rows = [{"id": f"s{i}", "problem": q, "solution": SOLUTIONS[i % len(SOLUTIONS)], "images": []}
            for i, q in enumerate(QUESTIONS)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "prompt.jinja").write_text("{{ problem }}")
    out = tmp_path / "run"
    config = {
        "data": {"train": str(tmp_path / "d.jsonl"), "eval": str(tmp_path / "d.jsonl"), "eval_limit": 4,
                 "prompt_template": str(tmp_path / "prompt.jinja")},
        "model": {"name": str(policy)},
        "algorithm": {"recipe": "grpo"},
        "rollout": {"num_generations": 2, "max_completion_tokens": 32},
        "reward": {"judge": {"backend": "openai", "model": "stub", "base_urls": [stub.url], "cache": False}},
        "trainer": {"output_dir": str(out), "max_steps": 2, "save_steps": 2, "per_device_train_batch_size": 2,
                    "learning_rate": 1e-4, "log_completions": 8, **trainer},
    }
    (tmp_path / "train.yaml").write_text(json.dumps(config))
    return tmp_path / "train.yaml", out


def said(done) -> str:
    return " ".join((done.stdout + done.stderr).split())  # rich wraps long lines


def test_zero3_two_processes_embedder_in_the_reward_and_validation_at_step_1(tmp_path, policy, stub):
    train_yaml, out = write_run(tmp_path, policy, stub, eval_steps=1)
    done = launch("zero3", train_yaml, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert said(done).count("trained 2 steps") == 2

    completions = lines(out / "completions.jsonl")
    answered = [c for c in completions if c.get("guard") is None]
    assert answered, "the tiny policy wrote no well-formed answer: the embedder never ran"
    assert all(c["accuracy_embed"] in (0.0, 1.0) and c["similarity"] is not None for c in answered)
    # The similarity the run logged is the real embedder's cosine (a partitioned or re-initialised one differs).
    embedder = load_embedder(RewardConfig().embedder.model)
    for c in answered:
        solution = SOLUTIONS[int(c["id"][1:]) % len(SOLUTIONS)]
        a, b = embedder.encode([c["answer"], solution], normalize_embeddings=True)
        assert c["similarity"] == pytest.approx(float(a @ b), abs=1e-4)

    metrics = lines(out / "metrics.jsonl")
    evals = [m for m in metrics if "eval/overall" in m]
    assert [m["step"] for m in evals] == [1, 2]  # validation ran at both steps, on both ranks
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["step"] in (1, 2) and best["rows"] == 4  # the 4 held-out items, spread over 2 ranks, all scored
    for folder in (out / "best", out / "final"):  # whole weights (ZeRO-3 gathers 16-bit weights to save)
        weights = load_file(folder / "model.safetensors")
        assert weights["model.embed_tokens.weight"].dim() == 2 and weights["model.embed_tokens.weight"].numel() > 0


def test_fsdp2_two_processes_save_a_whole_policy_and_resume(tmp_path, policy, stub):
    train_yaml, out = write_run(tmp_path, policy, stub, save_steps=1)
    done = launch("fsdp2", train_yaml, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    # The policy really was sharded (accelerate's FSDP branch, not plain DDP): FSDP's sharded checkpoint format.
    assert (out / "checkpoint-2" / "pytorch_model_fsdp_0").is_dir() and (out / "checkpoint-2" / "optimizer_0").is_dir()
    whole = load_file(policy / "model.safetensors")
    final = load_file(out / "final" / "model.safetensors")
    assert {k: final[k].shape for k in whole} == {k: v.shape for k, v in whole.items()}  # every weight, whole
    if "lm_head.weight" in final:  # the full state dict writes the tied head too: it must still be the embedding
        assert torch.equal(final["lm_head.weight"], final["model.embed_tokens.weight"])
    assert any(not torch.equal(final[k], whole[k]) for k in whole)  # trained, and gathered whole to save
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]

    resumed = launch("fsdp2", train_yaml, tmp_path, ["trainer.max_steps=3",
                                                    f"trainer.resume_from_checkpoint={out / 'checkpoint-2'}"])
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert json.loads((out / "summary.json").read_text())["global_step"] == 3
    steps = [m["step"] for m in lines(out / "metrics.jsonl") if "loss" in m]
    assert steps == [1, 2, 3]  # the resumed run went on from step 2
