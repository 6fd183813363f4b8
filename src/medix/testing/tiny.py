"""Tiny random-weight models of the real architectures, for tests and benchmarks on CPU.

    model, tokenizer = tiny_text_lm()          # 2-layer Llama with SmolLM2's tokenizer
    model, processor = tiny_qwen3_vl()         # 2-layer, 64-wide Qwen3-VL with an image processor

vLLM's CPU attention needs heads of at least 32 dimensions, and its Qwen3-VL code the full processor (video
half included, which needs torchvision): `tiny_text_lm(head_dim=32)`, `tiny_qwen3_vl(head_dim=32, video=True)`.
"""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
from transformers.processing_utils import ProcessorMixin

from medix.models import smollm2_folder

VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
# Qwen-style chat template that places the vision tokens for {"type": "image"} parts.
QWEN_STYLE_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


WIDTH = 64  # hidden size of every tiny model


def tiny_text_lm(seed: int = 0, head_dim: int = 16):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    torch.manual_seed(seed)
    heads = WIDTH // head_dim
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=WIDTH, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config), tokenizer


class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
    """Qwen3-VL's processor without its video half (the video processor needs torchvision)."""

    attributes = ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        ids = tokenizer.convert_tokens_to_ids
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.vision_start_token, self.vision_end_token = "<|vision_start|>", "<|vision_end|>"
        self.image_token_id, self.video_token_id = ids(self.image_token), ids(self.video_token)
        self.vision_start_token_id, self.vision_end_token_id = ids(self.vision_start_token), ids(self.vision_end_token)


def tiny_qwen3_vl(seed: int = 0, head_dim: int = 16, video: bool = False, max_pixels: int = 64 * 64):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    tokenizer.add_special_tokens({"additional_special_tokens": list(VISION_TOKENS)})
    tokenizer.chat_template = QWEN_STYLE_TEMPLATE
    # patch 16, merge 2: a 64x64 image becomes 4x4 patches → 4 visual tokens after merging.
    images = Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, temporal_patch_size=2,
                                      min_pixels=32 * 32, max_pixels=max_pixels)
    if video:
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

        videos = Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2)
        processor = Qwen3VLProcessor(image_processor=images, tokenizer=tokenizer, video_processor=videos,
                                     chat_template=QWEN_STYLE_TEMPLATE)
    else:
        processor = ImageOnlyQwen3VLProcessor(image_processor=images, tokenizer=tokenizer,
                                              chat_template=QWEN_STYLE_TEMPLATE)
    torch.manual_seed(seed)
    heads, unit = WIDTH // head_dim, head_dim // 16  # the rotary sections cover head_dim / 2
    config = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=WIDTH, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=head_dim,
                         max_position_embeddings=4096,
                         rope_scaling={"rope_type": "default", "mrope_section": [2 * unit, 3 * unit, 3 * unit],
                                       "mrope_interleaved": True}),
        vision_config=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=64,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[1],
                           num_position_embeddings=64),
        image_token_id=processor.image_token_id, video_token_id=processor.video_token_id,
        vision_start_token_id=processor.vision_start_token_id, vision_end_token_id=processor.vision_end_token_id,
    )
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, processor


def save_tiny(folder, vision: bool = False, head_dim: int = 16, video: bool = False, seed: int = 0,
              max_pixels: int = 64 * 64) -> str:
    """Write a tiny model and its tokenizer or processor to `folder` (loadable by name, as a hub model is)."""
    model, processing = tiny_qwen3_vl(seed, head_dim, video, max_pixels) if vision else tiny_text_lm(seed, head_dim)
    model.save_pretrained(folder)
    processing.save_pretrained(folder)
    return str(folder)
