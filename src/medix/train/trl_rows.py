"""Rows → TRL rows: a conversational prompt (format instruction included), images, and the columns the
reward functions read (`solution`, `problem`, `images`, `id`). Over-long prompts (image tokens included,
for a vision policy) are filtered and counted, as in the official scripts.

Everything stays a memory-mapped `datasets.Dataset`: prompts and lengths are one cached `Dataset.map`
(`data.num_proc` processes, datasets' progress bar), run by the first process of each node while the
others wait and then read its cache. Images stay paths / bytes until TRL reads a batch (the `images` column
decodes on access). A Qwen-VL processor gives an image's token count from its size alone, so the filter
reads image headers, never pixels.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, ContextManager

import datasets

from medix.data.datasets import load_rows
from medix.data.prompts import build_prompt, content_parts, text_only
from medix.errors import MedixError
from medix.train.config import DataConfig
from medix.train.image_tokens import fixed_size_images, image_size, image_token_counts

log = logging.getLogger(__name__)
PREP_VERSION = "prep-1"  # part of the cache key: bump when prompts or their counting change


@dataclass
class PreparedData:
    dataset: datasets.Dataset
    loaded: int
    too_long: int
    images_dropped: int  # image samples given to a text-only policy (the text is kept)


def messages(problem: str, n_images: int, cfg: DataConfig, vision: bool) -> list[dict]:
    """The chat for one question. A vision policy gets every turn as a list of parts (Arrow holds one type per
    column), the question's images at the template's `<image>` mark (else before the text); a text policy gets
    plain strings."""
    def turn(role: str, text: str, images: int = 0) -> dict:
        if not vision:
            return {"role": role, "content": text_only(text)}
        return {"role": role, "content": content_parts(text, images) if images else
                [{"type": "text", "text": text_only(text)}]}

    out = [turn("system", cfg.system_prompt)] if cfg.system_prompt else []
    for shot in cfg.few_shot:
        out += [turn("user", build_prompt(shot.problem, cfg.think_tag, cfg.prompt_template)),
                turn("assistant", shot.response)]
    return out + [turn("user", build_prompt(problem, cfg.think_tag, cfg.prompt_template), n_images)]


def prompt_tokens(processing, prompt: list[dict], images: list | None = None,
                  sizes: list | None = None) -> int:
    """Prompt length in tokens after the chat template; with images (vision policy), the image tokens the
    processor expands them to are counted too, as the official length filter does. Where the processor can
    count an image's tokens from its (height, width) (Qwen-VL), only those sizes are needed (given, or read
    from the image headers); otherwise the decoded images are processed."""
    n_images = len(sizes) if sizes is not None else len(images or [])
    if n_images and hasattr(processing, "image_processor"):
        text = processing.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        counted = _counted_from_sizes(processing, text, sizes if sizes is not None else [image_size(i) for i in images])
        if counted is not None:
            return counted
        if images is None:
            raise MedixError(f"{type(processing).__name__}: the chat template does not place one image token per "
                             "image, so image tokens cannot be counted from image sizes")
        return processed_prompt_tokens(processing, text, images)
    tokenizer = getattr(processing, "tokenizer", processing)
    flat = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else
             " ".join(p.get("text") or "" for p in m["content"])} for m in prompt]
    return len(tokenizer.apply_chat_template(flat, add_generation_prompt=True, tokenize=True, return_dict=False))


def processed_prompt_tokens(processing, text: str, images: list) -> int:
    """The length the processor gives when it processes the decoded images with the templated text."""
    return len(processing(text=[text], images=[_rgb(i) for i in images])["input_ids"][0])


def counts_from_sizes(processing) -> bool:
    """Whether `processing` gives image token counts from image sizes (then no pixels are read)."""
    return image_token_counts(processing, [(64, 64)]) is not None and getattr(processing, "image_token_id", None) \
        is not None


def _counted_from_sizes(processing, text: str, sizes: list) -> int | None:
    """Text tokens with each image placeholder replaced by that image's token count (None: not countable)."""
    counts = image_token_counts(processing, [tuple(s) for s in sizes])
    image_token_id = getattr(processing, "image_token_id", None)
    if counts is None or image_token_id is None:
        return None
    ids = processing.tokenizer(text)["input_ids"]
    placeholders = ids.count(image_token_id)
    if placeholders != len(sizes):  # a template that does not place one token per image
        return None
    return len(ids) - placeholders + sum(counts)


def _rgb(image):
    """A path, {bytes, path} entry or PIL image as the RGB PIL image the processor resizes (no downscaling)."""
    from PIL import Image

    if isinstance(image, dict):
        image = datasets.Image().decode_example(image)
    return (image if isinstance(image, Image.Image) else Image.open(image)).convert("RGB")


class PromptColumns:
    """`Dataset.map` function (batched, picklable for num_proc): prompt, its token count and the image count.

    It reads `problem` and the image sizes when the processor counts from sizes, so the image column (paths,
    or bytes that may be most of the table) is not read at all; else `problem` and the decoded images."""

    def __init__(self, cfg: DataConfig, processing, vision: bool):
        self.cfg, self.processing, self.vision = cfg, processing, vision
        self.from_sizes = not vision or counts_from_sizes(processing)
        self.input_columns = ["problem", "image_sizes" if self.from_sizes else "images"]

    def __call__(self, problems: list[str], images: list[list]) -> dict:
        out = {"prompt": [], "prompt_tokens": [], "n_images": []}
        for problem, row_images in zip(problems, images):
            n_images = len(row_images)
            prompt = messages(problem, n_images if self.vision else 0, self.cfg, self.vision)
            if not self.vision:
                tokens = prompt_tokens(self.processing, prompt)
            elif self.from_sizes:
                tokens = prompt_tokens(self.processing, prompt, sizes=row_images)
            else:
                tokens = prompt_tokens(self.processing, prompt, images=row_images)
            out["prompt"].append(prompt)
            out["prompt_tokens"].append(tokens)
            out["n_images"].append(n_images)
        return out


def prompt_feature(vision: bool):
    """Arrow type of the prompt column: messages with string content, or with a list of typed parts."""
    from datasets import List, Value

    text = Value("string")
    content = List({"type": text, "text": text}) if vision else text
    return List({"role": text, "content": content})


def prep_fingerprint(rows: datasets.Dataset, cfg: DataConfig, processing, vision: bool) -> str:
    """Cache key of the prompt map: the input rows, the prompt format and what the processor counts with.

    Built by hand because datasets' own hash of a processor changes once the tokenizer has been used (it
    records warnings on itself), which would make every process, and every restart, miss the cache."""
    from datasets.fingerprint import Hasher

    tokenizer = getattr(processing, "tokenizer", processing)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    image_processor = getattr(processing, "image_processor", None)
    return Hasher.hash([
        PREP_VERSION, rows._fingerprint, vision, counts_from_sizes(processing),
        messages("\x00", 1, cfg, vision),  # the prompt format as rendered: template, think tag, system, few-shot
        type(processing).__qualname__, backend.to_str() if backend else sorted(tokenizer.get_vocab().items()),
        getattr(processing, "chat_template", None), tokenizer.chat_template,
        image_processor.to_json_string() if image_processor is not None else None,
    ])


def _fits(lengths: list[int], max_tokens: int) -> list[bool]:
    return [n <= max_tokens for n in lengths]


class _LocalMainProcessFirst:
    """The first process of each node runs the block first; the others then reuse its cache files.

    The others wait for a marker file, not in a collective: accelerate's `local_main_process_first` is a
    barrier under the process group's timeout (ddp_timeout, 30 minutes by default), and downloading and
    preparing 51K image rows from the hub can take longer, which ended the run. The processes of one node
    share their launcher (the parent process), and call this in the same order, so (parent, call number)
    names the marker; the barrier after it is short."""

    def __init__(self):
        self.calls = 0

    @contextlib.contextmanager
    def __call__(self):
        import os
        import tempfile
        import time
        from pathlib import Path

        from accelerate import PartialState

        state = PartialState()
        self.calls += 1
        if state.num_processes == 1:
            yield
            return
        marker = Path(tempfile.gettempdir()) / f"medix-data-prep-{os.getppid()}-{self.calls}"
        if state.is_local_main_process:
            try:
                yield
            finally:
                marker.write_text("done")  # also on failure: the others then fail on their own, not hang
        else:
            while not marker.exists():
                time.sleep(1)
            yield
        state.wait_for_everyone()
        if state.is_local_main_process:
            marker.unlink(missing_ok=True)


_local_main_process_first = _LocalMainProcessFirst()


def prepare(source: str, cfg: DataConfig, processing, vision: bool, limit: int | None = None,
            main_process_first: Callable[[], ContextManager] | None = _local_main_process_first) -> PreparedData:
    """Load, validate, build prompts and drop over-long ones, once per node (pass `main_process_first=None`
    to run in every process, or e.g. a `TrainingArguments.main_process_first` to use the trainer's)."""
    with (main_process_first or contextlib.nullcontext)():
        rows = load_rows(source, limit=limit, on_invalid=cfg.on_invalid, num_proc=cfg.num_proc, decode_images=vision,
                         revision=cfg.revision)
        measured = _with_prompts(rows, source, cfg, processing, vision)
        kept = measured.filter(_fits, input_columns="prompt_tokens", batched=True,
                               fn_kwargs={"max_tokens": cfg.max_prompt_tokens},
                               num_proc=_procs(cfg.num_proc, len(measured)),
                               desc=f"{source}: prompts within {cfg.max_prompt_tokens} tokens")
    too_long = len(measured) - len(kept)
    dropped = 0 if vision else sum(n > 0 for n in kept["n_images"])
    if too_long:
        log.warning("%s: filtered %d prompt(s) longer than %d tokens", source, too_long, cfg.max_prompt_tokens)
    if dropped:
        log.warning("%s: %d image sample(s) given to a text-only policy; their images are ignored", source, dropped)
    if not len(kept):
        raise MedixError(f"{source}: no samples left after filtering ({too_long} longer than "
                         f"data.max_prompt_tokens={cfg.max_prompt_tokens})")
    dataset = kept.remove_columns(["prompt_tokens", "n_images", "image_sizes"] + ([] if vision else ["images"]))
    resize = fixed_size_images(processing) if vision else None
    if resize is not None:  # decoded images come out at the size both the trainer and vLLM give them
        dataset = dataset.with_transform(resize.rows, columns=["images"], output_all_columns=True)
    return PreparedData(dataset, len(rows), too_long, dropped)


def _with_prompts(rows: datasets.Dataset, source: str, cfg: DataConfig, processing, vision: bool) -> datasets.Dataset:
    """`rows` plus the prompt, prompt_tokens and n_images columns. The map writes only the new columns (the
    table beside them is not copied) and is cached under `prep_fingerprint`."""
    columns = PromptColumns(cfg, processing, vision)
    if vision and not columns.from_sizes:
        log.warning("%s cannot count image tokens from image sizes: every image is decoded and processed for "
                    "the length filter", type(processing).__name__)
    features = datasets.Features({"prompt": prompt_feature(vision), "prompt_tokens": datasets.Value("int64"),
                                  "n_images": datasets.Value("int64")})
    new = rows.map(columns, input_columns=columns.input_columns, batched=True, batch_size=256,
                   remove_columns=rows.column_names, features=features, num_proc=_procs(cfg.num_proc, len(rows)),
                   new_fingerprint=prep_fingerprint(rows, cfg, processing, vision),
                   desc=f"{source}: prompts and their lengths")
    return datasets.concatenate_datasets([rows, new], axis=1)


def _procs(num_proc: int | None, rows: int) -> int | None:
    """datasets refuses more processes than rows; one process is the plain loop."""
    return num_proc if num_proc and num_proc > 1 and rows >= num_proc else None
