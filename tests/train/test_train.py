"""`medix train` on CPU with tiny random-weight models: recipes, rewards logged, resume, validation, the CLI.

Dynamic sampling: tests/train/test_train_sampling.py; reward semantics in training:
tests/train/test_train_rewards.py."""

import json
import math

import pytest
import torch
from PIL import Image

from medix.errors import MedixError
from medix.testing.tiny import tiny_qwen3_vl, tiny_text_lm
from medix.train.config import load_train_config
from medix.train.sampling import concat_batches
from medix.train.trainer import build_trainer

COMPONENTS = ("accuracy_llm", "accuracy_embed", "modality", "format")


def length_reward(completions, **kwargs):
    """Varies between samples, so random-weight policies get a non-zero advantage."""
    return [min(1.0, len(c if isinstance(c, str) else c[0]["content"]) / 200) for c in completions]


length_reward.__name__ = "length"


def write_rows(path, n, images=None):
    rows = []
    for i in range(n):
        row = {"id": f"s{i}", "problem": f"Question {i}: which nerve is injured in wrist drop?",
               "solution": "<X_RAY> Radial nerve" if images else "Radial nerve", "images": []}
        if images:
            row["images"] = [images[i % len(images)]]
        rows.append(row)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def config(tmp_path, stub_url, recipe, data, *extra):
    return load_train_config(None, [
        f"algorithm.recipe={recipe}", f"data.train={data}", f"trainer.output_dir={tmp_path / 'run'}",
        "trainer.max_steps=2", "rollout.max_completion_tokens=8", "trainer.learning_rate=0.01",
        "trainer.save_steps=100", "rollout.num_generations=4", "trainer.per_device_train_batch_size=8",
        "reward.judge.backend=openai", "reward.judge.model=stub", f"reward.judge.base_urls=['{stub_url}']",
        "reward.judge.cache=false", "algorithm.dynamic_sampling.max_attempts=3",
        "algorithm.dynamic_sampling.on_exhausted=pad", *extra,
    ])


def train_and_check(cfg, model, processing, logged=COMPONENTS):
    run = build_trainer(cfg, model=model, processing=processing, extra_reward_funcs=[length_reward])
    before = [p.detach().clone() for p in model.parameters()]
    run.trainer.train()
    history = [h for h in run.trainer.state.log_history if "loss" in h]
    assert len(history) == 2
    assert all(math.isfinite(h["loss"]) for h in history)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "parameters did not change"
    for name in logged:
        assert f"rewards/{name}/mean" in history[0]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["grpo", "dapo", "gspo"])
def test_two_steps_text_lm(tmp_path, stub_url, recipe):
    model, tokenizer = tiny_text_lm()
    cfg = config(tmp_path, stub_url, recipe, write_rows(tmp_path / "d.jsonl", 8))
    # Untagged text-only rows: modality applies to none of them, so it has no value to log (None in the records).
    run = train_and_check(cfg, model, tokenizer, logged=[n for n in COMPONENTS if n != "modality"])
    assert not any("rewards/modality/mean" in h for h in run.trainer.state.log_history)
    args = run.trainer.args
    expected = {"grpo": (0.01, 0.2, 0.3, "token"), "dapo": (0.0, 0.2, 0.28, "token"),
                "gspo": (0.0, 3e-4, 4e-4, "sequence")}[recipe]
    assert (args.beta, args.epsilon, args.epsilon_high, args.importance_sampling_level) == expected
    assert args.delta == 3.0 and args.lr_scheduler_type == "constant" and args.weight_decay == 0.01
    logged = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").open()]
    assert logged and all(set(COMPONENTS) <= set(r) and r["id"].startswith("s") for r in logged)
    assert (tmp_path / "run" / "metrics.jsonl").is_file()


@pytest.mark.slow
def test_two_steps_qwen3_vl(tmp_path, stub_url):
    paths = []
    for i, shade in enumerate((40, 120, 200)):
        Image.new("RGB", (64, 64), (shade, shade, shade)).save(tmp_path / f"img{i}.png")
        paths.append(f"img{i}.png")
    model, processor = tiny_qwen3_vl()
    cfg = config(tmp_path, stub_url, "dapo", write_rows(tmp_path / "d.jsonl", 8, images=paths))
    train_and_check(cfg, model, processor)


def test_concat_batches_repads():  # the filter rule itself: tests/train/test_train_sampling.py
    a = {"prompt_ids": torch.tensor([[5, 6]]), "completion_ids": torch.tensor([[7]]), "advantages": torch.tensor([1.0]),
         "num_items_in_batch": torch.tensor(1)}
    b = {"prompt_ids": torch.tensor([[4, 5, 6]]), "completion_ids": torch.tensor([[8, 9]]),
         "advantages": torch.tensor([2.0]), "num_items_in_batch": torch.tensor(2)}
    merged = concat_batches([a, b], pad_token_id=0)
    assert merged["prompt_ids"].tolist() == [[0, 5, 6], [4, 5, 6]]  # prompts padded on the left
    assert merged["completion_ids"].tolist() == [[7, 0], [8, 9]]  # completions on the right


@pytest.mark.slow
def test_resume_continues_step_and_data_order(tmp_path, stub_url):
    data = write_rows(tmp_path / "d.jsonl", 16)

    def ids_by_step(run_dir):
        rows = [json.loads(line) for line in (run_dir / "completions.jsonl").open()]
        return {r["logged_at_step"]: r["id"] for r in rows}

    extra = ("trainer.max_steps=3", "trainer.save_steps=2", "trainer.log_completions=8",
             "algorithm.dynamic_sampling.enabled=false")
    model, tokenizer = tiny_text_lm()
    full = build_trainer(config(tmp_path / "a", stub_url, "dapo", data, *extra), model=model, processing=tokenizer,
                         extra_reward_funcs=[length_reward])
    full.trainer.train()
    checkpoint = tmp_path / "a" / "run" / "checkpoint-2"
    assert (checkpoint / "optimizer.pt").is_file() and (checkpoint / "model.safetensors").is_file()

    model, tokenizer = tiny_text_lm(seed=1)  # weights come from the checkpoint
    resumed = build_trainer(config(tmp_path / "b", stub_url, "dapo", data, *extra), model=model,
                            processing=tokenizer, extra_reward_funcs=[length_reward])
    resumed.trainer.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.trainer.state.global_step == 3
    assert ids_by_step(tmp_path / "b" / "run")[3] == ids_by_step(tmp_path / "a" / "run")[3]


@pytest.mark.parametrize("override,message", [
    ("algorithm.recipe=ppo", "unknown recipe 'ppo'"),
    ("trainer.learning_rat=1", "trainer.learning_rat: unknown key"),
    ("rollout.num_generations=3", "must be a multiple of rollout.num_generations"),
    ("trainer.eval_steps=5", "data.eval is empty"),
    ("nonsense", "must look like key.sub=value"),
])
def test_config_errors(override, message):
    with pytest.raises(MedixError, match=message):
        load_train_config(None, ["data.train=x.jsonl", override])


def test_managed_judge_server_stops_on_crash(monkeypatch):
    import sys

    import httpx

    from medix.testing.stub_server import free_port
    from medix.serving.placement import managed_judge

    port = free_port()
    monkeypatch.setattr("medix.serving.engines.server_command", lambda model, engine, p, extra: [
        sys.executable, "-m", "medix.testing.stub_server", "--port", str(p), "--latency", "0"])
    cfg = load_train_config(None, ["data.train=x.jsonl", "judge_serve.enabled=true", f"judge_serve.port={port}",
                                   "reward.judge.backend=openai"])
    url = f"http://127.0.0.1:{port}/v1/models"
    with pytest.raises(RuntimeError, match="crash"):
        with managed_judge(cfg):
            assert httpx.get(url).status_code == 200
            assert cfg.reward.judge.base_urls == [f"http://127.0.0.1:{port}/v1"]
            raise RuntimeError("crash during training")
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_judge_down_is_a_clear_error_before_training():
    from medix.testing.stub_server import free_port
    from medix.serving.placement import check_judge_reachable

    cfg = load_train_config(None, ["data.train=x.jsonl", "reward.judge.backend=openai",
                                   f"reward.judge.base_urls=['http://127.0.0.1:{free_port()}/v1']"])
    with pytest.raises(MedixError, match="is not reachable.*medix judge serve"):
        check_judge_reachable(cfg)


def test_long_prompts_filtered_and_counted(tmp_path):
    from transformers import AutoTokenizer

    from medix.models import smollm2_folder
    from medix.train.trl_rows import prepare

    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    rows = [{"problem": "short?", "solution": "a"}, {"problem": "long " * 400 + "?", "solution": "b"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = load_train_config(None, [f"data.train={tmp_path / 'd.jsonl'}", "data.max_prompt_tokens=300"]).data
    prepared = prepare(cfg.train, cfg, tokenizer, vision=False)
    assert (len(prepared.dataset), prepared.too_long) == (1, 1)
    cfg.max_prompt_tokens = 20
    with pytest.raises(MedixError, match="no samples left after filtering"):
        prepare(cfg.train, cfg, tokenizer, vision=False)
    (tmp_path / "bad.jsonl").write_text('{"problem": "q", "solution": "<BRAIN> x"}\n')
    with pytest.raises(MedixError, match="bad.jsonl, row 1, field 'solution': unknown modality tag"):
        prepare(str(tmp_path / "bad.jsonl"), cfg, tokenizer, vision=False)


@pytest.mark.slow
def test_validation_every_n_steps_keeps_best(tmp_path, stub_url):
    model, tokenizer = tiny_text_lm()
    data = write_rows(tmp_path / "d.jsonl", 8)
    held_out = write_rows(tmp_path / "e.jsonl", 3)
    cfg = config(tmp_path, stub_url, "dapo", data, f"data.eval={held_out}", "data.eval_limit=3",
                 "trainer.eval_steps=1")
    run = build_trainer(cfg, model=model, processing=tokenizer, extra_reward_funcs=[length_reward])
    run.trainer.train()
    evals = [h for h in run.trainer.state.log_history if "eval/overall" in h]
    assert len(evals) == 2 and all(h["eval/rows"] == 3 for h in evals)
    best = json.loads((tmp_path / "run" / "best" / "best.json").read_text())
    assert best["step"] in (1, 2) and (tmp_path / "run" / "best" / "model.safetensors").is_file()


@pytest.mark.slow
def test_medix_train_cli_one_step_embedded(tmp_path):
    """`medix train --config FILE key=value ...` end to end with the embedded SmolLM2 and local judge."""
    import subprocess
    import sys

    data = write_rows(tmp_path / "d.jsonl", 4)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: {{train: {data}}}\nrollout: {{num_generations: 2, max_completion_tokens: 8}}\n"
                   f"trainer: {{per_device_train_batch_size: 2, output_dir: {tmp_path / 'run'}, save_steps: 1}}\n")
    base = [sys.executable, "-m", "medix", "train", "--config", str(cfg)]
    ok = subprocess.run(base + ["trainer.max_steps=1", "algorithm.recipe=gspo"], capture_output=True, text=True,
                        timeout=600)
    assert ok.returncode == 0, ok.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["global_step"] == 1 and (tmp_path / "run" / "final" / "config.json").is_file()
    assert (tmp_path / "run" / "checkpoint-1").is_dir()
    bad = subprocess.run(base + ["trainer.max_step=1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "trainer.max_step: unknown key" in bad.stderr
    assert "max_steps" in bad.stderr and "Traceback" not in bad.stderr


def test_prompt_length_counts_image_tokens_at_the_configured_pixels(tmp_path):
    """The length filter counts the image tokens a vision prompt expands to, and model.min/max_pixels reach
    the processor (official: 262144 / 4194304)."""
    from medix.train.config import ModelConfig
    from medix.train.trl_rows import messages, prompt_tokens
    from medix.train.policy import prepare_policy

    model, processor = tiny_qwen3_vl()
    Image.new("RGB", (128, 128), (90, 30, 200)).save(tmp_path / "x.png")
    data = load_train_config(None, ["data.train=x.jsonl"]).data
    prompt = messages("Which organ?", 1, data, vision=True)
    text_only = prompt_tokens(processor, prompt)
    # tiny processor: at most 64×64 pixels → 4 visual tokens after 16-px patches and 2×2 merging
    assert prompt_tokens(processor, prompt, [str(tmp_path / "x.png")]) == text_only + 4 + 2  # + vision start/end
    prepare_policy(model, processor, ModelConfig(min_pixels=32 * 32, max_pixels=128 * 128))
    assert prompt_tokens(processor, prompt, [str(tmp_path / "x.png")]) == text_only + 16 + 2
