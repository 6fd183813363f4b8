"""Load the policy: a text LM or a Qwen-VL style vision-language model, with its tokenizer/processor."""

from __future__ import annotations

import logging

from medix.errors import MedixError
from medix.models import has_vision_config, load_for_training
from medix.train.config import ModelConfig

log = logging.getLogger(__name__)


def has_vision_tower(model) -> bool:
    return has_vision_config(model.config)


# Attention kernels that need a package (or a GPU) besides torch, and how to tell they are usable.
FLASH = {"flash_attention_2": "is_flash_attn_2_available", "flash_attention_3": "is_flash_attn_3_available"}


def attention(name: str) -> str:
    """`name`, or sdpa with one log line when a flash-attention kernel is asked for but cannot run here
    (flash-attn not installed, or no CUDA): the paper configs then still load, at sdpa's speed."""
    import transformers.utils as tu

    check = FLASH.get(name)
    if check is None or getattr(tu, check)():
        return name
    log.warning("model.attn_implementation=%s is not available here (needs the flash-attn package and a CUDA "
                "GPU: pip install flash-attn --no-build-isolation, or a Hub kernel with `kernels`); using sdpa",
                name)
    return "sdpa"


def load_policy(cfg: ModelConfig):
    """(model, processing_class). VLMs get an AutoProcessor, text LMs a tokenizer with a pad token."""
    attn = attention(cfg.attn_implementation) if cfg.attn_implementation else None
    model, processing = load_for_training(cfg.name, cfg.dtype, attn)
    prepare_policy(model, processing, cfg)
    return model, processing


def prepare_policy(model, processing, cfg: ModelConfig) -> None:
    """Pad token, left padding, frozen vision tower, gradient checkpointing — also for models built in tests."""
    tokenizer = getattr(processing, "tokenizer", processing)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # TRL pads prompts on the left itself, but re-tokenises a VLM's prompts with the processor's own padding
    # side for the image fields (mm_token_type_ids); TRL forces left only on a processor it builds itself. A
    # checkpoint whose tokenizer config says right would put the image markers off their tokens.
    tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
    if cfg.freeze_vision:
        frozen = 0
        for name, param in model.named_parameters():
            if "visual" in name or "vision_tower" in name:
                param.requires_grad_(False)
                frozen += 1
        if not frozen:
            raise MedixError(f"model.freeze_vision: {cfg.name} has no vision tower to freeze")
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    image_processor = getattr(processing, "image_processor", None)
    if image_processor is not None and (cfg.min_pixels or cfg.max_pixels):
        # Qwen-VL processors resize every image to a pixel count inside [shortest_edge, longest_edge].
        size = dict(image_processor.size)
        size.update({k: v for k, v in (("shortest_edge", cfg.min_pixels), ("longest_edge", cfg.max_pixels)) if v})
        image_processor.size = size


def peft_config(cfg: ModelConfig):
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")


def merge_lora(adapter_dir: str, output_dir: str) -> str:
    """Fold a LoRA adapter into its base model and save a plain HF folder (`medix train merge`)."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    try:
        model = AutoPeftModelForCausalLM.from_pretrained(adapter_dir)
    except (OSError, ValueError) as err:
        raise MedixError(f"{adapter_dir}: not a LoRA adapter folder ({err})") from None
    merged = model.merge_and_unload()
    merged.save_pretrained(output_dir)
    try:
        AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(output_dir)
    except OSError:
        log.warning("no tokenizer in %s; copy it to %s yourself", adapter_dir, output_dir)
    return output_dir
