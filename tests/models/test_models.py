"""The models package: one GGUF conversion (same weights as transformers' own GGUF loader), one dtype rule
decided from the CPU, the default judge, the shipped calibrated threshold."""

from __future__ import annotations

import pytest
import torch

from medix import models
from medix.judge.config import JudgeConfig
from medix.errors import MedixError
from medix.judge.identity import one_turn_identity
from medix.models import embedded, gguf, hardware, zoo


@pytest.fixture
def smollm2_gguf_path():
    return embedded.smollm2_gguf()


@pytest.mark.slow  # a whole GGUF conversion per dtype
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_streamed_conversion_has_the_weights_transformers_loads_from_the_gguf(tmp_path, smollm2_gguf_path, dtype,
                                                                               monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(gguf, "SHARD_BYTES", 64 << 20)  # several shards, so the index is exercised
    folder = gguf.convert(smollm2_gguf_path, tmp_path / "out", dtype)
    ours = AutoModelForCausalLM.from_pretrained(folder, dtype="auto")
    reference = AutoModelForCausalLM.from_pretrained(smollm2_gguf_path.parent, gguf_file=smollm2_gguf_path.name)
    assert ours.dtype == getattr(torch, dtype)
    assert ours.config.architectures == ["LlamaForCausalLM"]  # `transformers serve` loads the class named here
    theirs = reference.state_dict()
    mine = ours.state_dict()
    assert set(mine) == set(theirs)
    # transformers dequantises to float32; ours is that, cast once to the target dtype
    assert all(torch.equal(mine[k], theirs[k].to(mine[k].dtype)) for k in theirs)
    assert len(list(folder.glob("model-*-of-*.safetensors"))) > 1
    assert not list(tmp_path.glob(".convert-*"))  # the temporary folder is gone


@pytest.mark.slow  # converts the GGUF's tokenizer
def test_converted_tokenizer_has_the_special_tokens_the_gguf_names(tmp_path, smollm2_gguf_path):
    """SmolLM2's GGUF says bos 1, eos 2, pad 2, unk 0 (tokenizer.ggml.*_token_id): ChatML's <|im_end|> ends a
    reply. transformers 5.17's own GGUF reading gives eos <|im_start|> and no pad; the folder must not."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.convert(smollm2_gguf_path, tmp_path / "out", "float32"))
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (
        "<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>")
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (2, 2)


def test_row_blocks_dequantise_to_the_whole_tensors_values(smollm2_gguf_path):
    """The streamed path (a GGUF architecture whose tensors transformers does not transform, e.g. qwen2) gives
    the values of one whole-tensor dequantisation, block boundaries anywhere (here 7 rows, uneven)."""
    import numpy as np
    from gguf import GGUFReader, dequantize

    reader = GGUFReader(smollm2_gguf_path)
    embedding = next(t for t in reader.tensors if t.name == "token_embd.weight")  # quantised, 49152 rows
    norm = next(t for t in reader.tensors if t.name.endswith("attn_norm.weight"))  # float32, 1-D
    for tensor in (embedding, norm):
        whole = torch.from_numpy(np.array(dequantize(tensor.data, tensor.tensor_type)))
        values_per_row = whole.shape[-1]
        blocks = gguf.dequantize_rows(tensor, torch.float32, block_values=7 * values_per_row)
        assert blocks.shape == whole.shape and torch.equal(blocks, whole)
        assert torch.equal(gguf.dequantize_rows(tensor, torch.bfloat16), whole.to(torch.bfloat16))


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_follows_the_cpu(monkeypatch, native, expected):
    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda: native)
    assert models.runtime_dtype("cpu", "auto") == expected
    assert models.runtime_dtype("cpu", "float32") == "float32"  # an explicit choice is kept
    assert models.runtime_dtype("cpu", "bfloat16") == "bfloat16"
    assert models.runtime_dtype("cuda:0", "auto") == "auto"  # CUDA: the checkpoint's own dtype


def test_a_dtype_outside_the_rule_is_named():
    with pytest.raises(MedixError, match="float16"):
        models.runtime_dtype("cpu", "float16")


@pytest.mark.parametrize("native", [True, False])
def test_dtype_is_part_of_the_judge_identity(monkeypatch, native):
    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda: native)
    identity = one_turn_identity(JudgeConfig(model="smollm2-135m", device="cpu"))
    # float32 stays absent, as in identities written before the dtype existed: old judgments still match
    assert identity.get("dtype") == ("bfloat16" if native else None)
    forced = one_turn_identity(JudgeConfig(model="smollm2-135m", device="cpu", dtype="float32"))
    assert "dtype" not in forced


def test_default_judge_is_the_cpu_judge_where_installed(monkeypatch):
    monkeypatch.delenv(zoo.DEFAULT_JUDGE_ENV, raising=False)
    monkeypatch.setattr(zoo, "cpu_judge_installed", lambda: True)
    assert JudgeConfig().model == models.QWEN_CODER
    monkeypatch.setattr(zoo, "cpu_judge_installed", lambda: False)
    assert JudgeConfig().model == models.SMOLLM2
    monkeypatch.setenv(zoo.DEFAULT_JUDGE_ENV, "my/judge")
    assert JudgeConfig().model == "my/judge"
    assert JudgeConfig(model="other").model == "other"  # a configured judge is never replaced


def test_shipped_threshold_applies_only_where_it_was_measured(monkeypatch):
    entry = models.ZOO[models.QWEN_CODER]
    monkeypatch.setitem(models.ZOO, models.QWEN_CODER, zoo.ZooEntry(**{**entry.__dict__, "judge_threshold": 0.3}))
    assert JudgeConfig(model=models.QWEN_CODER).threshold == 0.3
    assert JudgeConfig(model="Qwen/Qwen2.5-Coder-1.5B-Instruct").threshold == 0.3  # the hub alias too
    assert JudgeConfig(model=models.QWEN_CODER, threshold=0.5).threshold == 0.5  # set: kept
    assert JudgeConfig(model=models.QWEN_CODER, template="mine.jinja").threshold == 0.5  # another prompt
    assert JudgeConfig(model=models.QWEN_CODER, backend="openai").threshold == 0.5  # another reader
    assert JudgeConfig(model=models.SMOLLM2).threshold == 0.5


def test_the_local_backend_decides_with_the_configured_threshold():
    """Both YES cut-offs of the logit backend (one-turn verdicts and conversation rounds) use judge.threshold."""
    import asyncio

    from medix.judge.local_backend import LocalBackend
    from medix.judge.types import Conversation

    prompt = "Reference: Radial nerve\nCandidate: Ulnar nerve\nDo they match? Answer YES or NO."
    for threshold, expected in ((0.0, 1.0), (1.0, 0.0)):  # p_yes is strictly inside (0, 1)
        backend = LocalBackend(JudgeConfig(model="smollm2-135m", device="cpu", threshold=threshold, dtype="float32"))
        (verdict,) = asyncio.run(backend.verdicts([prompt]))
        assert verdict.score == expected and 0.0 < verdict.p_yes < 1.0
        conversation = Conversation(kind="binary", first=prompt, followup="Are you sure? YES or NO.")
        (talk,) = backend.conversation_verdicts([conversation], rounds=2)
        assert talk.rounds == [expected, expected]


def test_a_cpu_without_bf16_judges_in_float32(monkeypatch):
    """Forcing the CPU check off: the judge loads float32 weights and gives the same p_yes as dtype=float32."""
    import asyncio

    from medix.judge.local_backend import LocalBackend

    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda: False)
    prompt = "Reference: Vitamin K\nCandidate: vitamin K\nDo they match? Answer YES or NO."
    auto = LocalBackend(JudgeConfig(model="smollm2-135m", device="cpu"))
    assert auto.dtype == "float32" and auto.model.dtype == torch.float32
    forced = LocalBackend(JudgeConfig(model="smollm2-135m", device="cpu", dtype="float32"))
    (a,), (b,) = asyncio.run(auto.verdicts([prompt])), asyncio.run(forced.verdicts([prompt]))
    assert a.p_yes == b.p_yes


@pytest.fixture(scope="module")
def text_lm_folder(tmp_path_factory):
    """A model outside the zoo: a folder holding a (tiny, random) text LM, as a trained `runs/.../final` is."""
    from medix.testing.tiny import tiny_text_lm

    model, tokenizer = tiny_text_lm()
    folder = tmp_path_factory.mktemp("text-lm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_a_model_outside_the_zoo_is_text_or_vision_by_its_config(text_lm_folder):
    """Every path decides "text or vision" the same way: a zoo model by its kind, any other by its config."""
    import medix
    from medix.eval.config import EvalConfig
    from medix.eval.generate import eval_policy

    assert models.is_vision_model(text_lm_folder) is False and models.is_vision_model("MediX-R1-2B") is True
    assert medix.Assistant(text_lm_folder).vision is False  # was taken for a vision model (any unknown name)
    assert medix.Assistant("MediX-R1-2B").vision is True
    policy = eval_policy(EvalConfig(model=text_lm_folder, backend="local", tasks=["llm"], max_new_tokens=4))
    assert policy.vision is False
    policy.load()  # loaded as a causal LM (AutoModelForImageTextToText refuses a Llama config)
    model, tokenizer = models.load_for_training(text_lm_folder)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.dtype == getattr(torch, models.training_dtype("auto")) == torch.float32  # CPU: float32 to train


def test_a_zoo_name_of_a_hub_model_resolves_to_its_hub_id():
    assert models.resolve("MediX-R1-8B") == "MBZUAI/MediX-R1-8B"
    assert models.resolve("mbzuai/medix-r1-8b") == "MBZUAI/MediX-R1-8B"
    assert models.resolve("org/any-model") == "org/any-model" and models.resolve("/a/folder") == "/a/folder"


@pytest.mark.parametrize("asked,cuda,expected", [("auto", False, "float32"), ("auto", True, "bfloat16"),
                                                 ("float16", False, "float16"), ("bfloat16", False, "bfloat16")])
def test_a_policy_trains_in_float32_on_cpu_and_bfloat16_on_cuda(monkeypatch, asked, cuda, expected):
    monkeypatch.setattr(hardware, "pick_device", lambda device: device or ("cuda" if cuda else "cpu"))
    assert hardware.training_dtype(asked) == expected


def test_a_vision_model_whose_processor_falls_back_to_its_tokenizer_is_refused(tmp_path):
    """AutoProcessor returns the bare tokenizer when a processor cannot be built (Qwen3-VL's full processor
    without torchvision): the model would then run on text alone, its images dropped without a word."""
    import importlib.util

    from medix.models import load_model
    from medix.testing.tiny import save_tiny

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("with torchvision installed the processor builds")
    folder = save_tiny(tmp_path / "vl", vision=True)
    with pytest.raises(MedixError, match="processor could not be built.*torchvision"):
        load_model(folder)
