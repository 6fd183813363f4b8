"""GPU smoke check of the paper-scale code paths with a tiny random-weight Qwen3-VL (medix.testing.tiny):
2 training steps (gspo recipe: no KL reference, no dynamic sampling) on one device in bf16 with sdpa attention
and the loopback judge, then the eval generate phase on 4 sample image items; prints a one-screen summary.
Run through bench/gpu_smoke.sh.

    bench/gpu_smoke.sh            # on a GPU machine (CUDA required)
    bench/gpu_smoke.sh --smoke    # the same flow on CPU in float32: the CI check that it has not rotted
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def training_rows(folder: Path, n: int = 8) -> Path:
    """Rows of the training schema (images, problem, solution) over the bundled sample images."""
    sample = REPO / "src" / "medix" / "eval" / "sample" / "path_vqa"
    images = sorted(p for p in sample.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    rows = [{"id": f"s{i}", "images": [str(images[i % len(images)])], "problem": "Is there tissue necrosis?",
             "solution": "<MICROSCOPY> yes"} for i in range(n)]
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def length_reward(completions, **_) -> list[float]:
    return [len(c[0]["content"] if isinstance(c, list) else c) / 100 for c in completions]


def train(folder: Path, device: str, judge_url: str) -> dict:
    import torch

    from medix.testing.tiny import tiny_qwen3_vl
    from medix.train.config import load_train_config
    from medix.train.trainer import build_trainer

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    # Qwen3-VL's full processor (its video half needs torchvision), so the eval phase can load it from the folder
    # as it loads a user's checkpoint; without torchvision medix refuses the folder (its images would be dropped).
    model, processor = tiny_qwen3_vl(video=importlib.util.find_spec("torchvision") is not None)
    model.config._attn_implementation = "sdpa"  # what a GPU node without flash-attn falls back to
    model = model.to(device=device, dtype=dtype)
    model.save_pretrained(folder / "policy")  # the eval phase below loads it like a user's checkpoint
    processor.save_pretrained(folder / "policy")
    cfg = load_train_config(None, [
        f"data.train={training_rows(folder)}", "data.max_prompt_tokens=2048", "algorithm.recipe=gspo",
        "rollout.num_generations=4", "rollout.max_completion_tokens=16", "reward.judge.backend=openai",
        "reward.judge.model=stub", f"reward.judge.base_urls=[{judge_url}]", "reward.judge.cache=false",
        f"trainer.output_dir={folder / 'run'}", "trainer.max_steps=2", "trainer.save_steps=2",
        "trainer.per_device_train_batch_size=4", "trainer.learning_rate=0.01", "trainer.weight_decay=0",
        f"trainer.bf16={device == 'cuda'}",
        "monitor.enabled=false"])
    before = {n: p.detach().float().clone() for n, p in model.named_parameters()}
    # The stub judge says NO to everything and a random policy writes no format: a length reward gives the
    # group a non-zero advantage, so the update (not only weight decay) moves the weights.
    run = build_trainer(cfg, model=model, processing=processor, extra_reward_funcs=[length_reward])
    started = time.perf_counter()
    result = run.trainer.train()
    changed = sum(not torch.equal(before[n], p.detach().float()) for n, p in run.trainer.model.named_parameters())
    run.trainer.reward_funcs[0].composite.close()
    grad_norms = [h["grad_norm"] for h in run.trainer.state.log_history if "grad_norm" in h]
    return {"steps": result.global_step, "grad_norms": [round(float(g), 4) for g in grad_norms],
            "seconds": round(time.perf_counter() - started, 1),
            "params_changed": f"{changed}/{len(before)}", "dtype": str(next(run.trainer.model.parameters()).dtype),
            "attention": run.trainer.model.config._attn_implementation,
            "device": str(next(run.trainer.model.parameters()).device)}


def generate(folder: Path) -> dict:
    out = folder / "eval"
    command = [sys.executable, "-m", "medix", "eval", "run", "--model", str(folder / "policy"), "--sample",
               "--tasks", "path_vqa", "--limit", "4", "--phases", "generate", "--max-new-tokens", "16", "-o", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    records = [json.loads(line) for f in (out / "generations").glob("*.jsonl") for line in f.open()]
    return {"exit": done.returncode, "seconds": round(time.perf_counter() - started, 1), "records": len(records),
            "answered": sum(r.get("raw") is not None for r in records),
            "image_missing": sum("image_missing" in json.dumps(r) for r in records),
            "error": done.stderr.strip().splitlines()[-1] if done.returncode else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, float32 (for CI); default needs CUDA")
    args = parser.parse_args()
    import torch

    from medix.testing.stub_server import JudgeStub

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run with --smoke for the CPU check", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU smoke)"
    with tempfile.TemporaryDirectory() as tmp, JudgeStub(latency_s=0) as judge:
        trained = train(Path(tmp), device, judge.url)
        generated = generate(Path(tmp))
    summary = {"gpu": gpu, "torch": torch.__version__, "train": trained, "eval_generate": generated}
    print(json.dumps(summary, indent=2))
    ok = trained["steps"] == 2 and not trained["params_changed"].startswith("0/") and generated["exit"] == 0 \
        and generated["answered"] == 4 and generated["image_missing"] == 0
    print("gpu smoke:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
