"""LoRA: one training step on a tiny policy saved as a folder, `medix merge-lora`, the merged model loads and
generates, and its logits are the adapter's."""

import torch
from helpers.scripted_run import question, write_rows
from typer.testing import CliRunner

from medix.cli import app
from medix.testing.scripted import script_rollouts
from medix.testing.tiny import tiny_text_lm
from medix.train.config import load_train_config
from medix.train.trainer import build_trainer


def writer(prompt: str, k: int) -> str:  # rewards vary inside each group, so the adapter gets a gradient
    return "<think>x</think> <answer>Radial nerve</answer>" if (question(prompt) + k) % 2 else "<think>x</think>"


def test_lora_step_merge_load_generate(tmp_path, stub):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, tokenizer = tiny_text_lm()
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    (tmp_path / "prompt.jinja").write_text("{{ problem }}")
    cfg = load_train_config(None, [
        f"model.name={tmp_path / 'base'}", "model.lora.enabled=true", "model.lora.r=4", "model.lora.alpha=8",
        "model.lora.dropout=0", f"data.train={write_rows(tmp_path / 'd.jsonl', 4)}",
        f"data.prompt_template={tmp_path / 'prompt.jinja'}", f"trainer.output_dir={tmp_path / 'run'}",
        "trainer.max_steps=1", "trainer.learning_rate=0.05", "rollout.num_generations=4",
        "trainer.per_device_train_batch_size=8", "algorithm.dynamic_sampling.enabled=false",
        "reward.judge.backend=openai", "reward.judge.model=stub", f"reward.judge.base_urls=['{stub.url}']"])
    run = build_trainer(cfg)  # loads the policy from the folder, as `medix train` does
    script_rollouts(run.trainer, writer)
    try:
        run.trainer.train()
        run.trainer.save_model(str(tmp_path / "run" / "final"))
    finally:
        run.trainer.reward_funcs[0].composite.close()
    final = tmp_path / "run" / "final"
    assert (final / "adapter_config.json").is_file() and not (final / "model.safetensors").exists()

    result = CliRunner().invoke(app, ["merge-lora", str(final), str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    adapter = AutoPeftModelForCausalLM.from_pretrained(final).eval()
    reloaded_base = AutoModelForCausalLM.from_pretrained(tmp_path / "base").eval()
    ids = AutoTokenizer.from_pretrained(tmp_path / "merged")("Which nerve?", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = merged(ids).logits
        assert torch.allclose(logits, adapter(ids).logits, atol=1e-4)  # the merge is the adapter, folded in
        assert not torch.allclose(logits, reloaded_base(ids).logits, atol=1e-4)  # and the step changed something
        out = merged.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids.shape[1]
