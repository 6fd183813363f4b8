"""Helpers for the multi-process training tests: `accelerate launch … -m medix train` with 2 CPU processes over
gloo, under DeepSpeed ZeRO-3, FSDP2 or plain DDP, and a tiny policy that writes well-formed answers.

A random-weight policy never writes an `<answer>` block, so the reward's guard decides every sample and the
embedder and judge never run: the faults that only show once they load (a partitioned embedder under ZeRO-3)
stay hidden. `answering_policy` fits the tiny Llama to one reply so the whole reward runs on every step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from medix.testing.stub_server import free_port
from medix.testing.tiny import tiny_text_lm

SHIMS = Path(__file__).parent / "shims"  # sitecustomize.py: test-only adjustments, switched on by env vars

# One process group timeout for every launch: a collective that one rank never joins fails in a minute
# instead of the 30-minute default.
PG_TIMEOUT_S = 90

ACCELERATE = {
    "zero3": {"distributed_type": "DEEPSPEED",
              "deepspeed_config": {"zero_stage": 3, "zero3_init_flag": True, "zero3_save_16bit_model": True,
                                   "offload_optimizer_device": "none", "offload_param_device": "none"}},
    "fsdp2": {"distributed_type": "FSDP",
              "fsdp_config": {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                              "fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer",
                              "fsdp_cpu_ram_efficient_loading": False, "fsdp_reshard_after_forward": True,
                              "fsdp_state_dict_type": "SHARDED_STATE_DICT", "fsdp_offload_params": False}},
    "ddp": {"distributed_type": "MULTI_CPU"},
}


def answering_policy(folder: Path, prompts: list[str], reply: str, steps: int = 120) -> None:
    """Save to `folder` a tiny Llama fitted to answer every chat prompt in `prompts` with `reply` (then EOS),
    confidently enough that sampling at temperature 1 keeps the reply's structure."""
    model, tokenizer = tiny_text_lm()
    rows = []
    for prompt in prompts:
        head = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                             tokenize=False)
        start = tokenizer(head, add_special_tokens=False)["input_ids"]
        tail = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((start + tail, len(start)))
    length = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), length), tokenizer.pad_token_id)
    labels = torch.full((len(rows), length), -100)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, (row, prompt_len) in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
        labels[i, prompt_len:len(row)] = torch.tensor(row[prompt_len:])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.05, f"the tiny policy did not learn its reply (loss {loss.item():.3f})"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def accelerate_config(path: Path, kind: str, processes: int = 2) -> Path:
    """An accelerate config for `processes` CPU processes under `kind` (zero3, fsdp2 or ddp)."""
    path.write_text(json.dumps({"compute_environment": "LOCAL_MACHINE", **ACCELERATE[kind], "mixed_precision": "no",
                                "num_machines": 1, "num_processes": processes, "machine_rank": 0,
                                "main_process_port": free_port(), "rdzv_backend": "static", "same_network": True,
                                "use_cpu": False}))
    return path


def launch(kind: str, train_yaml: Path, tmp: Path, overrides: list[str] = (), timeout: int = 300,
           processes: int = 2) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file <kind> -m medix train --config train_yaml [overrides]` on CPU."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu",
           "MEDIX_TEST_NO_SHM": "1", "MEDIX_TEST_FSDP_ON_CPU": "1" if kind == "fsdp2" else "0",
           "PYTHONPATH": os.pathsep.join([str(SHIMS), os.environ.get("PYTHONPATH", "")])}
    config = accelerate_config(tmp / f"accelerate-{kind}.yaml", kind, processes)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
               "-m", "medix", "train", "--config", str(train_yaml), f"trainer.ddp_timeout={PG_TIMEOUT_S}",
               *overrides]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


# vLLM's Qwen-VL code needs torchvision. PyPI's torchvision is a CUDA build that breaks every transformers import
# beside the CPU torch, so the README's test command installs it outside the environment, into this folder, and
# only processes that run vLLM see it (with the shim that lets it import).
VLLM_TORCHVISION = Path(os.environ.get("MEDIX_TEST_VLLM_TORCHVISION", Path(sys.prefix) / "vllm-torchvision"))


def vllm_env(**extra: str) -> dict[str, str]:
    """Environment of a process that runs the CPU vLLM: the test shims (tests/helpers/shims/sitecustomize.py),
    torchvision, a 1 GiB KV cache (vLLM's CPU default takes most of the machine's memory) and no hub."""
    path = [str(SHIMS), str(VLLM_TORCHVISION), os.environ.get("PYTHONPATH", "")]
    # VLLM_LOGGING_LEVEL: TRL sets ERROR in the environment of any process that imports it (its _compat.py), and
    # the tests read vLLM's own INFO lines.
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "MEDIX_TEST_TORCHVISION_OPS": "1",
            "VLLM_LOGGING_LEVEL": "INFO", "MEDIX_TEST_VLLM_CPU": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": os.pathsep.join(filter(None, path)), **extra}
