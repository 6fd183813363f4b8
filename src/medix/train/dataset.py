"""Samples → TRL rows: a conversational prompt (format instruction included), images, and the columns
the reward functions read (`solution`, `problem`, `images`, `id`). Over-long prompts (image tokens
included, for a vision policy) are filtered and counted, as in the official scripts."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import datasets

from medix.data.datasets import Sample, load_samples
from medix.data.prompts import build_prompt, content_parts, text_only
from medix.errors import MedixError
from medix.train.config import DataConfig

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    dataset: datasets.Dataset
    loaded: int
    too_long: int
    images_dropped: int  # image samples given to a text-only policy (the text is kept)


def messages(sample: Sample, cfg: DataConfig, vision: bool) -> list[dict]:
    text = build_prompt(sample.problem, cfg.think_tag, cfg.prompt_template)
    content = content_parts(text, len(sample.images)) if vision and sample.images else text_only(text)
    out = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    for shot in cfg.few_shot:
        out += [{"role": "user", "content": build_prompt(shot.problem, cfg.think_tag, cfg.prompt_template)},
                {"role": "assistant", "content": shot.response}]
    return out + [{"role": "user", "content": content}]


def prompt_tokens(processing, prompt: list[dict], images: list | None = None) -> int:
    """Prompt length in tokens after the chat template; with images (vision policy), the image tokens the
    processor expands them to are counted too, as the official length filter does."""
    if images and hasattr(processing, "image_processor"):
        text = processing.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        with_images = processing(text=[text], images=[_rgb(i) for i in images])
        return len(with_images["input_ids"][0])
    tokenizer = getattr(processing, "tokenizer", processing)
    flat = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else
             " ".join(p.get("text", "") for p in m["content"])} for m in prompt]
    return len(tokenizer.apply_chat_template(flat, add_generation_prompt=True, tokenize=True, return_dict=False))


def _rgb(image):
    """A path or PIL image as the RGB PIL image the processor resizes (no other downscaling)."""
    from PIL import Image

    return (image if isinstance(image, Image.Image) else Image.open(image)).convert("RGB")


def prepare(source: str, cfg: DataConfig, processing, vision: bool, limit: int | None = None) -> PreparedData:
    samples = load_samples(source, limit=limit, on_invalid=cfg.on_invalid)
    rows, too_long, dropped = [], 0, 0
    for s in samples:
        prompt = messages(s, cfg, vision)
        if prompt_tokens(processing, prompt, s.images if vision else None) > cfg.max_prompt_tokens:
            too_long += 1
            continue
        dropped += bool(s.images) and not vision
        row = {"id": s.id, "prompt": prompt, "solution": s.solution, "problem": s.problem}
        if vision:
            row["images"] = s.images
        rows.append(row)
    if too_long:
        log.warning("%s: filtered %d prompt(s) longer than %d tokens", source, too_long, cfg.max_prompt_tokens)
    if dropped:
        log.warning("%s: %d image sample(s) given to a text-only policy; their images are ignored", source, dropped)
    if not rows:
        raise MedixError(f"{source}: no samples left after filtering ({too_long} longer than "
                         f"data.max_prompt_tokens={cfg.max_prompt_tokens})")
    dataset = datasets.Dataset.from_list(rows)
    if vision and any(r["images"] for r in rows):
        dataset = dataset.cast_column("images", datasets.Sequence(datasets.Image()))
    return PreparedData(dataset, len(samples), too_long, dropped)
