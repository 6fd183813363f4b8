"""`medix train --plan`: parameter counts and per-GPU memory lines against figures computed by hand from the
models' architecture numbers and the formulas in medix.train.plan's docstring; refusals and their messages."""

import os

import pytest
import yaml

from helpers import REPO, cli_runner
from helpers.cli_runner import cli
from medix.errors import MedixError
from medix.train.config import load_train_config
from medix.train.launch import GIB, launch_shape
from medix.train.model_size import PAPER_MODELS, find_config, model_size
from medix.train.plan import GpuRole, Line, plan_training

ZERO3, FSDP, MULTI = (str(REPO / "configs" / "accelerate" / f) for f in ("zero3.yaml", "fsdp.yaml",
                                                                        "zero3-multinode.yaml"))
GPU = 79.6 * GIB


def qwen3_vl_params(vocab, h, inter, layers, heads, kv, hd, tied, depth, vh, vinter, vout, deepstack, experts=0):
    """Qwen3-VL's parameters from its config numbers: text decoder (q/k/v/o without bias, q/k RMSNorms, SwiGLU
    or `experts` fused SwiGLU experts + router, two RMSNorms per layer), vision tower (Conv3d patch embedding
    3×2×16×16, 2304 learned positions, LayerNorm blocks with biased qkv/proj/fc1/fc2), the 2×2 patch merger
    and one post-shuffle merger per deepstack layer."""
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h + 2 * hd
    mlp = experts * 3 * h * inter + h * experts if experts else 3 * h * inter
    text = vocab * h + layers * (attn + mlp + 2 * h) + h + (0 if tied else vocab * h)
    block = 4 * vh + (3 * vh * vh + 3 * vh) + (vh * vh + vh) + 2 * vh * vinter + vinter + vh
    m = 4 * vh
    merger = (m * m + m) + (m * vout + vout)
    vision = (3 * 2 * 16 * 16 * vh + vh) + 2304 * vh + depth * block + (2 * vh + merger) + deepstack * (2 * m + merger)
    return text + vision


P2B = qwen3_vl_params(151936, 2048, 6144, 28, 16, 8, 128, True, 24, 1024, 4096, 2048, 3)
P8B = qwen3_vl_params(151936, 4096, 12288, 36, 32, 8, 128, False, 27, 1152, 4304, 4096, 3)
P30B = qwen3_vl_params(151936, 2048, 768, 48, 32, 4, 128, False, 27, 1152, 4304, 2048, 3, experts=128)
MEDEMBED = 335_141_888  # BERT-large: 24 layers × 1024, vocab 30522, 512 positions, with pooler


def test_hand_counts_match_the_published_sizes():
    assert P2B / 2.13e9 == pytest.approx(1, abs=0.01)   # model.safetensors 4.26 GB in bf16
    assert P8B / 8.77e9 == pytest.approx(1, abs=0.005)
    assert P30B / 31.1e9 == pytest.approx(1, abs=0.01)


@pytest.mark.parametrize("name,expected", [
    ("Qwen/Qwen3-VL-2B-Instruct", P2B), ("Qwen/Qwen3-VL-8B-Instruct", P8B),
    ("Qwen/Qwen3-VL-30B-A3B-Instruct", P30B), ("Qwen/Qwen3-VL-30B-A3B-Thinking", P30B),
    ("abhinand/MedEmbed-large-v0.1", MEDEMBED)])
def test_meta_device_count_is_exact(name, expected):
    assert model_size(name).params == expected


def test_every_packaged_model_is_near_its_published_size():
    for name, entry in yaml.safe_load(PAPER_MODELS.read_text()).items():
        assert model_size(name).params / entry["published"] == pytest.approx(1, abs=0.01), name


def test_local_folder_config_counts_what_the_real_model_has(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    config.save_pretrained(tmp_path)
    real = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    size = model_size(str(tmp_path))
    assert size.params == real and size.source.startswith("folder")
    assert size.kv_bytes_per_token() == 2 * 3 * 2 * 16 * 2  # K and V × layers × KV heads × head_dim × bf16


def test_missing_model_config_is_named(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MedixError, match="no config.json for model 'someone/unknown-7b' offline.*"
                                         "huggingface-cli download someone/unknown-7b config.json"):
        find_config("someone/unknown-7b")


def test_lora_counts_only_adapters():
    # r × (in + out) per linear: 36 text layers (q, k, v, o, gate, up, down), 27 vision blocks (qkv, proj,
    # fc1, fc2), 4 mergers (fc1, fc2); the output head is left out, as peft's all-linear does.
    text = 36 * 16 * ((4096 + 4096) + 2 * (4096 + 1024) + (4096 + 4096) + 3 * (4096 + 12288))
    vision = 27 * 16 * ((1152 + 3456) + (1152 + 1152) + 2 * (1152 + 4304))
    mergers = 4 * 16 * ((4608 + 4608) + (4608 + 4096))
    assert model_size("Qwen/Qwen3-VL-8B-Instruct", (16, "all-linear")).adapter_params == text + vision + mergers


def lines(role):
    return {line.item.split(" (")[0]: line.bytes for line in role.lines}


def paper(name, *overrides):
    return load_train_config(REPO / "configs" / f"medix-r1-{name}.yaml", list(overrides))


# The placement the paper configs had before the judge got GPUs of its own: the judge server beside training on
# GPU 0 with a 0.15 share, and the rollout engine awake during the update (no sleep mode).
JUDGE_ON_GPU0 = ("judge_serve.enabled=true", "judge_serve.allow_shared_gpus=true",
                 "judge_serve.tensor_parallel_size=1", "judge_serve.gpu_memory_utilization=0.15",
                 "judge_serve.max_model_len=8192", "rollout.vllm_enable_sleep_mode=false")


def test_8b_dapo_zero3_figures_and_the_judge_on_gpu0_overflows():
    plan = plan_training(paper("8b-dapo", *JUDGE_ON_GPU0), launch_shape(ZERO3, 8, 79.6, None))
    gpu0, rest = plan.roles
    assert gpu0.name == "training GPU 0 + judge server" and rest.name == "training GPU 1–7"
    expected = {
        "weights": P8B * 2 / 8, "gradients": P8B * 2 / 8, "optimizer: fp32 master + Adam m, v": P8B * 12 / 8,
        "embedder abhinand/MedEmbed-large-v0.1": MEDEMBED * 4, "CUDA context, NCCL, allocator reserve": 2 * GIB,
        "vLLM rollout engine": 0.35 * GPU, "gathered units": 2 * (151936 * 4096) * 2,  # the embedding is largest
        "activations": 5 * 8448 * 4096 * 2 * 36,       # ≈ 12.5 GB (issue 18, point 9)
        "one layer recomputed in backward": 5 * 8448 * 4096 * 34,
        # TRL 1.16's fused LM head (trl/kernels/chunked_logprob.py): one 4,096 × 32,768 bf16 tile, and fp32
        # gradients of the 5 × 4,096 completion hidden states and of the 151,936 × 4,096 head.
        "LM head: one logits tile": 4096 * 32768 * 2,
        "LM head backward: fp32 hidden-state gradient": 5 * 4096 * 4096 * 4,
        "LM head backward: fp32 head gradient": 151936 * 4096 * 4,
        # 5 completions × 64 steps per generation, each image at max_pixels: 3 channels × 2 frames, bf16.
        "pixel values kept for the update": 320 * 4194304 * 6 * 2,  # ≈ 15 GiB
        # Qwen3-VL-8B's tower: 27 blocks × 1152 wide, 16-pixel patches; checkpointed (2 B × 27 + 34 B per unit).
        "vision tower activations": 5 * (4194304 // 16**2) * 1152 * (2 * 27 + 34),
        "optimizer step: fp32 gradients": P8B * 4 / 8,
    }
    assert lines(rest) == pytest.approx(expected)
    assert lines(gpu0) == pytest.approx({**expected, "judge server Qwen/Qwen3-4B-Instruct-2507": 0.15 * GPU})
    # no sleep mode: everything adds up, and with every image at max_pixels neither role fits
    assert rest.peak == pytest.approx(sum(expected.values()))
    assert gpu0.peak == pytest.approx(sum(expected.values()) + 0.15 * GPU)
    assert gpu0.overflow.item == "LM head backward: fp32 head gradient"  # 0.15 × 79.6 GiB more: it passes earlier
    assert rest.overflow.item.startswith("pixel values")
    assert "training GPU 0 + judge server" in plan.refusal() and "pixel values kept" in plan.refusal()
    # the paper config as shipped (judge on its own node, vLLM asleep in the update) fits: 68.67 GiB
    shipped = plan_training(paper("8b-dapo"), launch_shape(ZERO3, 8, 79.6, None))
    assert shipped.fits and shipped.roles[0].peak == pytest.approx(
        sum(v for k, v in expected.items() if k != "vLLM rollout engine"))


def test_8b_grpo_adds_a_sharded_reference_and_lora_removes_it():
    assert lines(plan_training(paper("8b-grpo"), launch_shape(ZERO3, 8, 79.6, None)).roles[-1])[
        "KL reference model"] == pytest.approx(P8B * 2 / 8)
    lora = plan_training(paper("8b-grpo", "model.lora.enabled=true"), launch_shape(ZERO3, 8, 79.6, None)).roles[-1]
    adapters = model_size("Qwen/Qwen3-VL-8B-Instruct", (16, "all-linear")).adapter_params
    assert "KL reference model" not in lines(lora)
    assert lines(lora)["gradients"] == pytest.approx(adapters * 2 / 8)
    assert lines(lora)["weights"] == pytest.approx((P8B + adapters) * 2 / 8)


def test_2b_dapo_fits_and_its_kv_cache_is_counted():
    plan = plan_training(paper("2b-dapo"), launch_shape(FSDP, 8, 79.6, None))
    assert plan.fits, plan.refusal()
    assert plan.launch.sharding.name == "FSDP full shard"
    rest = plan.roles[-1]
    assert lines(rest)["optimizer: fp32 master + Adam m, v"] == pytest.approx(P2B * 12 / 8)
    assert lines(rest)["activations"] == pytest.approx(5 * 8448 * 2048 * 2 * 28)
    vllm = next(x for x in rest.lines if x.item.startswith("vLLM"))
    kv_tokens = (0.35 * GPU - P2B * 2 / 2) / (2 * 28 * (8 // 2) * 128 * 2)  # TP 2 splits the 8 KV heads
    assert f"{kv_tokens:,.0f} tok" in vllm.how


def test_30b_one_node_overflows_at_the_rollout_share_and_two_nodes_halve_the_state():
    one = plan_training(paper("30b-dapo"), launch_shape(ZERO3, 8, 79.6, None)).roles[-1]
    assert lines(one)["optimizer: fp32 master + Adam m, v"] == pytest.approx(P30B * 12 / 8)
    resident = (P30B * 16 / 8 + MEDEMBED * 4 + 2 * GIB)
    assert resident < GPU < resident + 0.35 * GPU
    assert one.overflow.item.startswith("vLLM rollout engine")
    two = plan_training(paper("30b-dapo"), launch_shape(MULTI, 8, 79.6, None))
    assert two.launch.processes == 16 and lines(two.roles[-1])["weights"] == pytest.approx(P30B * 2 / 16)


def test_zero2_keeps_whole_weights_and_offload_empties_the_optimizer(tmp_path):
    accel = tmp_path / "zero2.yaml"
    accel.write_text(yaml.safe_dump({"distributed_type": "DEEPSPEED", "num_processes": 4, "deepspeed_config": {
        "zero_stage": 2, "offload_optimizer_device": "cpu"}}))
    role = plan_training(paper("2b-dapo"), launch_shape(accel, 4, 79.6, None)).roles[-1]
    assert lines(role)["weights"] == pytest.approx(P2B * 2)          # not sharded under ZeRO-2
    assert lines(role)["gradients"] == pytest.approx(P2B * 2 / 4)
    assert lines(role)["optimizer: fp32 master + Adam m, v"] == 0
    assert "gathered units" not in lines(role)


def test_phases_do_not_overlap_and_the_overflowing_line_is_named():
    resident, rollout, update = Line("state", 10, ""), Line("rollout", 30, "", "rollout"), Line("update", 20, "",
                                                                                                 "update")
    role = GpuRole("g", 35, [resident, rollout, update])
    assert role.running() == [10, 40, 30] and role.peak == 40 and role.overflow is rollout
    awake = GpuRole("g", 35, [resident, Line("rollout", 30, ""), update])  # no sleep mode: the share stays
    assert awake.running() == [10, 40, 60] and awake.overflow.item == "rollout"


def test_sleep_mode_moves_the_vllm_share_out_of_the_update():
    plan = plan_training(paper("8b-dapo"), launch_shape(ZERO3, 8, 79.6, None))  # sleep mode on, judge elsewhere
    assert [r.name for r in plan.roles] == ["training GPU 0–7"] and plan.fits, plan.refusal()
    role = plan.roles[-1]
    vllm = next(x for x in role.lines if x.item.startswith("vLLM"))
    assert vllm.phase == "rollout"
    resident = sum(x.bytes for x in role.lines if x.phase == "resident")
    update = sum(x.bytes for x in role.lines if x.phase == "update")
    assert role.peak == pytest.approx(resident + max(vllm.bytes, update))


@pytest.mark.parametrize("override,message", [
    ("rollout.vllm_gpu_memory_utilization=0.1", "rollout.vllm_gpu_memory_utilization=0.1: the 7.96 GiB share"),
    ("judge_serve.gpu_memory_utilization=0.05", "judge server: its 3.98 GiB share")])
def test_a_share_that_cannot_hold_one_sequence_is_refused(override, message):
    plan = plan_training(paper("8b-dapo", *JUDGE_ON_GPU0, override, "rollout.vllm_tensor_parallel_size=1"),
                         launch_shape(ZERO3, 8, 79.6, None))
    assert not plan.fits and message in plan.refusal()


def test_generation_without_vllm_gathers_zero3_weights_and_holds_the_batch_kv_cache():
    cfg = paper("2b-dapo", "rollout.engine=transformers")
    zero3 = lines(plan_training(cfg, launch_shape(ZERO3, 8, 79.6, None)).roles[-1])
    kv = 5 * 64 * 8448 * (2 * 28 * 8 * 128 * 2)  # 320 sequences of the generation batch × K, V of every layer
    assert zero3["full weights gathered to generate"] == pytest.approx(P2B * 2 * 7 / 8)
    assert zero3["KV cache of generate()"] == pytest.approx(kv)
    assert "full weights gathered to generate" not in lines(plan_training(cfg, launch_shape(FSDP, 8, 79.6, None))
                                                            .roles[-1])


def test_tensor_parallel_must_divide_the_processes_and_a_cpu_embedder_takes_no_gpu():
    plan = plan_training(paper("2b-dapo", "rollout.vllm_tensor_parallel_size=3", "reward.embedder.device=cpu"),
                         launch_shape(ZERO3, 8, 79.6, None))
    assert "rollout.vllm_tensor_parallel_size=3 must divide the 8 training processes" in plan.refusal()
    assert not any(item.startswith("embedder") for item in lines(plan.roles[-1]))


def test_judge_tensor_parallel_spans_gpus():
    cfg = paper("8b-dapo", *JUDGE_ON_GPU0, "judge_serve.tensor_parallel_size=2")
    gpu01, rest = plan_training(cfg, launch_shape(ZERO3, 8, 79.6, None)).roles
    assert gpu01.name == "training GPU 0–1 + judge server" and rest.name == "training GPU 2–7"
    judge = next(x for x in gpu01.lines if x.item.startswith("judge server"))
    assert "weights 3.75 (÷ TP 2)" in judge.how  # 4,022,468,096 × 2 B / 2


def test_judge_on_its_own_gpus_is_a_separate_role():
    cfg = paper("8b-dapo", "judge_serve.enabled=true", "judge_serve.gpus=[6,7]", "judge_serve.tensor_parallel_size=2",
                "judge_serve.gpu_memory_utilization=0.97", "judge_serve.max_model_len=2048")
    plan = plan_training(cfg, launch_shape(None, 8, 79.6, "zero3"))
    train, judge = plan.roles
    assert train.name == "training GPU 0–5" and judge.name == "judge GPU 6, 7"
    assert lines(train)["weights"] == pytest.approx(P8B * 2 / 6)
    assert lines(judge) == pytest.approx({"judge server Qwen/Qwen3-4B-Instruct-2507": 0.97 * GPU})
    crowded = plan_training(cfg, launch_shape(ZERO3, 8, 79.6, None))  # 8 training processes + 2 judge GPUs
    assert "10 GPUs needed, 8 per node" in crowded.refusal()


def medix(*args, **env):
    return cli_runner.medix(*args, env={**os.environ, **env})


def test_cli_refuses_a_plan_that_does_not_fit_naming_the_line():
    result = medix("train", "--config", "configs/medix-r1-8b-dapo.yaml", "--plan", "--accelerate-config",
                   "configs/accelerate/zero3.yaml", *JUDGE_ON_GPU0)
    assert result.returncode == 1, result.stderr
    assert "DOES NOT FIT from 'LM head backward: fp32 head gradient'" in result.stdout
    assert "training GPU 1–7: the lines above without judge server" in result.stdout
    assert "DOES NOT FIT from 'pixel values kept for the update (bf16)'" in " ".join(result.stdout.split())
    assert "does not fit" in result.stderr and "LM head backward" in " ".join(result.stderr.split())


def test_cli_names_a_model_without_an_offline_config(tmp_path):
    result = medix("train", "--config", "configs/medix-r1-8b-dapo.yaml", "--plan", "model.name=someone/unknown-7b",
                   HF_HUB_CACHE=str(tmp_path))
    assert result.returncode == 2
    assert "no config.json for model 'someone/unknown-7b' offline" in " ".join(result.stderr.split())


@pytest.mark.parametrize("content,args,message", [
    (None, (8, 79.6, None), "--accelerate-config .*missing.yaml: no such file"),
    ("distributed_type: TPU\n", (8, 79.6, None), "distributed_type TPU is not planned"),
    ("distributed_type: DEEPSPEED\ndeepspeed_config: {deepspeed_config_file: ds.json}\n", (8, 79.6, None),
     "deepspeed_config_file is not read by --plan"),
    ("distributed_type: NO\n", (8, 79.6, "zero4"), "--sharding zero4: choose one of zero3, zero2"),
    ("distributed_type: NO\n", (0, 79.6, None), r"--gpus \(0\) must be >= 1")])
def test_bad_node_shapes_are_named(tmp_path, content, args, message):
    path = tmp_path / "missing.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MedixError, match=message):
        launch_shape(path, *args)


def test_a_paper_config_plans_the_launch_it_names():
    result = medix("train", "--config", "configs/medix-r1-8b-dapo.yaml", "--plan")
    assert result.returncode == 0, result.stderr
    assert "DeepSpeed ZeRO-3 over 8 processes (configs/accelerate/zero3.yaml)" in result.stdout


def test_plan_flags_and_accelerate_numbers_that_are_not_numbers_are_named(tmp_path):
    accelerate = tmp_path / "acc.yaml"
    accelerate.write_text("distributed_type: MULTI_GPU\nnum_processes: eight\n")
    config = tmp_path / "train.yaml"
    config.write_text("data: {train: x.jsonl}\n")
    code, output, error = cli("train", "--config", str(config), "--plan", "--gpu-memory", "nan")
    assert code != 0 and error is not None and "--gpu-memory (nan GiB) a number > 0" in str(error)
    code, output, error = cli("train", "--config", str(config), "--plan", "--accelerate-config", str(accelerate))
    assert code != 0 and error is not None and "num_processes is 'eight'" in str(error)
