"""A vision-language policy through DAPO's refill rounds: the tiny Qwen3-VL with images of unequal sizes and
prompts of unequal lengths, from a checkpoint whose tokenizer pads on the right.

Guards two faults that only show together with those inputs: a second dynamic-sampling round concatenated
`mm_token_type_ids` (which TRL extends over prompt + completion) as if it were prompt-only, and a processor
left padding on the right put the image markers of the prompt off their tokens. Qwen3-VL then either fails
in its forward pass or places its image features and rotary positions on the wrong tokens.
"""

import json

import pytest
import torch
from PIL import Image

from medix.testing.stub_server import JudgeStub
from medix.testing.tiny import tiny_qwen3_vl
from medix.train.config import load_train_config
from medix.train.sampling import concat_batches
from medix.train.trainer import build_trainer


def write_rows(tmp_path) -> str:
    sizes = [(32, 32), (64, 64), (64, 32), (48, 64)]  # 1, 4, 2 and 3 merged image tokens (merge 2, patch 16)
    rows = []
    for i, size in enumerate(sizes * 2):
        Image.new("RGB", size, (40 * (i % 5), 90, 160)).save(tmp_path / f"img{i}.png")
        problem = "Which nerve? " + "Describe the finding in detail. " * (i % 4)  # unequal prompt lengths
        rows.append({"id": f"s{i}", "problem": problem, "solution": "<X_RAY> Radial nerve",
                     "images": [f"img{i}.png"]})
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(tmp_path / "d.jsonl")


def image_markers_on_image_tokens(batch: dict, image_token_id: int) -> None:
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    markers = batch["mm_token_type_ids"]
    assert markers.shape == ids.shape
    assert torch.equal(markers == 1, ids == image_token_id), "image markers are off their image tokens"


@pytest.mark.slow
def test_dapo_refill_rounds_keep_image_markers_on_their_tokens(tmp_path):
    model, processor = tiny_qwen3_vl()
    processor.tokenizer.padding_side = "right"  # as some checkpoints' tokenizer configs say
    with JudgeStub() as stub:
        cfg = load_train_config(None, [
            "algorithm.recipe=dapo", f"data.train={write_rows(tmp_path)}", f"trainer.output_dir={tmp_path / 'run'}",
            "trainer.max_steps=2", "rollout.max_completion_tokens=6", "trainer.learning_rate=0.01",
            "trainer.save_steps=100", "rollout.num_generations=2", "trainer.per_device_train_batch_size=4",
            "reward.judge.backend=openai", "reward.judge.model=stub", f"reward.judge.base_urls=['{stub.url}']",
            "reward.judge.cache=false", "algorithm.dynamic_sampling.max_attempts=3",
            "algorithm.dynamic_sampling.on_exhausted=pad"])
        run = build_trainer(cfg, model=model, processing=processor)
        assert processor.tokenizer.padding_side == "left"
        trainer, batches = run.trainer, []
        score_round = trainer._score_round

        def recorded(inputs):
            batch = score_round(inputs)
            batches.append(batch)
            return batch

        trainer._score_round = recorded
        trained = []
        dynamic_batch = trainer._dynamic_batch
        trainer._dynamic_batch = lambda inputs: trained.append(dynamic_batch(inputs)) or trained[-1]
        trainer.train()

    assert len(batches) >= 2 and len(trained) == 2  # a random policy's groups are all dropped: 3 rounds a step
    widths = {b["prompt_ids"].size(1) for b in batches}
    assert len(widths) > 1 or len({b["completion_ids"].size(1) for b in batches}) > 1  # the re-padding is exercised
    for batch in batches + trained:
        image_markers_on_image_tokens(batch, processor.image_token_id)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in trainer.state.log_history if "loss" in h)


def test_concat_batches_splits_prompt_and_completion_fields_at_the_prompt():
    # Row a: prompt [5, IMG] + completion [7]; row b: prompt [4, IMG, IMG] + completion [8, 9]; IMG = 3.
    a = {"prompt_ids": torch.tensor([[5, 3]]), "completion_ids": torch.tensor([[7]]),
         "mm_token_type_ids": torch.tensor([[0, 1, 0]]), "advantages": torch.tensor([1.0])}
    b = {"prompt_ids": torch.tensor([[4, 3, 3]]), "completion_ids": torch.tensor([[8, 9]]),
         "mm_token_type_ids": torch.tensor([[0, 1, 1, 0, 0]]), "advantages": torch.tensor([2.0])}
    merged = concat_batches([a, b], pad_token_id=0)
    assert merged["prompt_ids"].tolist() == [[0, 5, 3], [4, 3, 3]]
    assert merged["completion_ids"].tolist() == [[7, 0], [8, 9]]
    assert merged["mm_token_type_ids"].tolist() == [[0, 0, 1, 0, 0], [0, 1, 1, 0, 0]]
    image_markers_on_image_tokens(merged, image_token_id=3)


class RecordingVLLM:
    """Stands in for TRL's VLLMGeneration at its boundary: records the prompt ids it is handed."""

    def __init__(self):
        self.prompts = []

    def sync_weights(self):
        pass

    def generate(self, prompts, images, num_generations, profiler=None):
        self.prompts += [list(p) for p in prompts]
        completions = [[504, 2030] for _ in prompts for _ in range(num_generations)]
        return prompts, completions, [[[-0.1], [-0.2]] for _ in completions], None


@pytest.mark.parametrize("mode, collapsed", [("colocate", True), ("server", False)])
def test_colocated_vllm_gets_one_placeholder_per_image(tmp_path, mode, collapsed):
    model, processor = tiny_qwen3_vl()
    with JudgeStub() as stub:
        cfg = load_train_config(None, [
            f"data.train={write_rows(tmp_path)}", f"trainer.output_dir={tmp_path / 'run'}",
            "rollout.num_generations=2", "trainer.per_device_train_batch_size=2", "reward.judge.backend=openai",
            "reward.judge.model=stub", f"reward.judge.base_urls=['{stub.url}']"])
        trainer = build_trainer(cfg, model=model, processing=processor).trainer
    trainer.use_vllm, trainer.vllm_mode, trainer.vllm_generation = True, mode, RecordingVLLM()
    trainer._last_loaded_step = trainer.state.global_step
    images = [Image.new("RGB", (64, 64)), Image.new("RGB", (64, 32))]
    prompts = [[{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": text}]}]
               for img, text in zip(images, ("Which nerve?", "What modality is this scan?"))]
    prompt_ids, prompt_images, fields = trainer._tokenize_prompts(prompts)
    assert all(ids.count(processor.image_token_id) > 1 for ids in prompt_ids)  # TRL's ids are expanded

    trainer._generate_single_turn(prompt_ids, prompt_images, fields, 1)

    # What vLLM expands itself: the chat template's text, tokenised alone (one placeholder per image).
    bare = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p[0]["content"][1]["text"]}]}]
            for p in prompts]
    unexpanded = [processor.tokenizer(processor.apply_chat_template(b, add_generation_prompt=True, tokenize=False),
                                      add_special_tokens=False)["input_ids"] for b in bare]
    assert (trainer.vllm_generation.prompts == unexpanded) is collapsed
    assert "generate" not in vars(trainer.vllm_generation)  # the wrapper is gone after the call


def test_images_reach_trl_at_the_size_both_processors_give_them(tmp_path):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from medix.train.trl_rows import prepare
    from medix.train.policy import prepare_policy

    Image.new("RGB", (300, 200), (10, 120, 200)).save(tmp_path / "big.png")
    (tmp_path / "d.jsonl").write_text(json.dumps({"id": "a", "problem": "Which nerve?", "solution": "<X_RAY> Radial",
                                                  "images": ["big.png"]}) + "\n")
    model, processor = tiny_qwen3_vl()
    cfg = load_train_config(None, [f"data.train={tmp_path / 'd.jsonl'}", "model.min_pixels=1024",
                                   "model.max_pixels=4096"])
    prepare_policy(model, processor, cfg.model)  # the run's pixel bounds, on the trainer's processor only
    row = prepare(cfg.data.train, cfg.data, processor, True, main_process_first=None).dataset[0]
    # vLLM's processor: the same architecture with the checkpoint's own (much wider) bounds.
    engine = Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, temporal_patch_size=2, min_pixels=256,
                                      max_pixels=4096 * 4096)

    def grid(image_processor, image):
        return image_processor(images=[image], return_tensors="pt")["image_grid_thw"].tolist()

    original = Image.open(tmp_path / "big.png")
    assert grid(engine, original) != grid(processor.image_processor, original)  # the mismatch being guarded
    image = row["images"][0]
    assert image.width * image.height <= 4096 and image.width % 32 == 0 and image.height % 32 == 0
    assert grid(engine, image) == grid(processor.image_processor, image)


def test_validation_answers_come_from_the_run_s_vllm_engine(tmp_path):
    """With vLLM rollouts, validation asks the engine (HF generate of 256 × 4,096 tokens takes hours on one GPU),
    at the validation's own sampling settings, restored afterwards; image prompts reach it unexpanded."""

    model, processor = tiny_qwen3_vl()
    with JudgeStub() as stub:
        cfg = load_train_config(None, [
            f"data.train={write_rows(tmp_path)}", f"data.eval={tmp_path / 'd.jsonl'}", "data.eval_limit=3",
            f"trainer.output_dir={tmp_path / 'run'}", "rollout.num_generations=2",
            "trainer.per_device_train_batch_size=2", "reward.judge.backend=openai", "reward.judge.model=stub",
            f"reward.judge.base_urls=['{stub.url}']", "reward.judge.cache=false", "trainer.eval_temperature=0.6",
            "trainer.eval_top_p=0.95", "rollout.max_completion_tokens=7"])
        run = build_trainer(cfg, model=model, processing=processor)
        engine = RecordingVLLM()
        engine.temperature, engine.top_p, engine.max_completion_length = 1.0, 1.0, 4096
        seen = []
        generate = engine.generate
        engine.generate = lambda prompts, images, num_generations, profiler=None: (
            seen.append((engine.temperature, engine.top_p, engine.max_completion_length, num_generations))
            or generate(prompts, images, num_generations))
        trainer = run.trainer
        trainer.use_vllm, trainer.vllm_mode, trainer.vllm_generation = True, "colocate", engine
        trainer._last_loaded_step = trainer.state.global_step
        summary = run.validator.run(trainer.model, None, trainer)
    assert summary["rows"] == 3 and seen == [(0.6, 0.95, 7, 1)]
    assert (engine.temperature, engine.top_p, engine.max_completion_length) == (1.0, 1.0, 4096)
    assert len(engine.prompts) == 3 and all(p.count(processor.image_token_id) == 1 for p in engine.prompts)
    assert [r["response"] for r in run.validator.last] == [
        processor.tokenizer.decode([504, 2030], skip_special_tokens=True)] * 3
