"""How many rows the two prompt-length rules keep (docs/fidelity.md, Training, "lengths").

    python bench/prompt_length_filter.py --data-dir ../benchmarks --tasks rad_vqa,path_vqa --max 4352
    python bench/prompt_length_filter.py --smoke     # the bundled sample rows (10 items): the CI check

medix drops a prompt whose token count, with each image expanded to the visual tokens the processor makes
of it, is over `--max`. The official EasyR1 filter keeps a prompt when `processor.apply_chat_template(...)`
of it is at most `--max` long; a processor's apply_chat_template returns the templated TEXT (one image
placeholder per image), so that length is in characters; the kept prompts are then cut on the right at
`--max` tokens (image tokens expanded). Rows: `problem` + `image(s)` JSONL (the training data's shape), or
benchmark VQA rows (`question` + `image`) as stand-ins. Visual tokens come from Qwen3-VL's image processor
settings (patch 16, merge 2, the paper's min / max pixels); text tokens from the embedded SmolLM2 tokenizer
with a Qwen-style chat template (a stand-in for Qwen's tokenizer: counts are close, not equal).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from medix.data.prompts import build_prompt, text_only
from medix.testing.tiny import tiny_qwen3_vl

PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def visual_tokens(path: Path, min_pixels: int, max_pixels: int, cache: dict) -> int:
    if path not in cache:
        with Image.open(path) as im:
            width, height = im.size
        h, w = smart_resize(height, width, factor=32, min_pixels=min_pixels, max_pixels=max_pixels)
        cache[path] = (h // 16) * (w // 16) // 4  # patches of 16 px, merged 2 x 2
    return cache[path]


def rows(data_dir: Path, task: str):
    for line in (data_dir / task / "test.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        images = row.get("images") or ([row["image"]] if row.get("image") else [])
        yield row.get("problem") or row["question"], [data_dir / task / i for i in images]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, help="DIR/<task>/test.jsonl (+ images); required unless --smoke")
    ap.add_argument("--smoke", action="store_true", help="the bundled sample set (5 rows per task), seconds")
    ap.add_argument("--tasks", default="rad_vqa,path_vqa")
    ap.add_argument("--max", type=int, default=4352)
    ap.add_argument("--template", default="paper_format.jinja")
    ap.add_argument("--min-pixels", type=int, default=262144)
    ap.add_argument("--max-pixels", type=int, default=4194304)
    args = ap.parse_args()
    if args.smoke:
        args.data_dir = Path(__file__).resolve().parents[1] / "src" / "medix" / "eval" / "sample"
        print("SMOKE RUN on the bundled sample rows: the counts show the code runs, not the training data")
    elif args.data_dir is None:
        ap.error("--data-dir is required (or --smoke)")
    tokenizer = tiny_qwen3_vl()[1].tokenizer  # SmolLM2's tokenizer with the vision tokens and a Qwen-style template
    cache: dict = {}
    print("| rows | medix keeps (tokens, images expanded) | official filter keeps (characters) | "
          "of those, cut on the right | kept by one rule only |")
    print("|---:|---:|---:|---:|---:|")
    for task in args.tasks.split(","):
        n = medix = official = cut = differ = 0
        for problem, images in rows(args.data_dir, task):
            text = build_prompt(problem, "thinking", args.template)
            text = text.replace("<image>", PLACEHOLDER * len(images)) if images else text_only(text)
            templated = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                      add_generation_prompt=True, tokenize=False)
            expanded = len(tokenizer(templated, add_special_tokens=False)["input_ids"]) + sum(
                visual_tokens(p, args.min_pixels, args.max_pixels, cache) - 1 for p in images)
            keeps_medix, keeps_official = expanded <= args.max, len(templated) <= args.max
            n += 1
            medix += keeps_medix
            official += keeps_official
            cut += keeps_official and expanded > args.max
            differ += keeps_medix != keeps_official
        print(f"| {task}: {n} | {medix} | {official} | {cut} | {differ} |")
    largest = max(cache.values()) if cache else 0
    print(f"\n{len(cache)} distinct images; visual tokens per image up to {largest} "
          f"(cap {math.ceil(args.max_pixels / 1024)}).")


if __name__ == "__main__":
    main()
