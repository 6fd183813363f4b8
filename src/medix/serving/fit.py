"""The policy server's context sized to the evaluation it serves, and a prompt that does not fit named as such.

vLLM refuses a request whose prompt (image tokens included) and generation budget exceed `--max-model-len` with
an HTTP 400. Left at the model's own length (Qwen3-VL: 262,144) the KV cache may not fit; set too low, a large
image turns an item into a failure. When the spec leaves `max_model_len` unset, `fit_policy_server` derives it
from what the run will send: the longest prompt's text (UTF-8 bytes bound its tokens: a token covers at least
one byte), each image's token bound under the protocol's image size and the model's own processor (Qwen-VL smart
resize: at most max_pixels / (patch × merge)² tokens, and no more than the long side allows), and the generation
budget. `--limit-mm-per-prompt` allows the run's most images per prompt and no video, so vLLM neither profiles
nor reserves memory for video at start-up.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

TEMPLATE_TOKENS = 256  # chat template, role markers and the vision start / end tokens around each image
ROUND_TO = 256
# vLLM's two wordings: the renderer's ("maximum context length is 64 tokens. However, your prompt contains 140
# input tokens") and the engine's ("Input length (140) exceeds model's maximum context length (64)").
_OVERFLOW = (re.compile(r"maximum context length is (?P<limit>\d+) tokens.*?contains (?:at least )?(?P<length>\d+)?",
                        re.IGNORECASE | re.DOTALL),
             re.compile(r"input length \((?P<length>\d+)\) exceeds model's maximum context length \((?P<limit>\d+)\)",
                        re.IGNORECASE))


@dataclass(frozen=True)
class ContextFit:
    max_model_len: int | None = None  # derived; the spec's own value wins
    images: int | None = None  # most images per prompt; None for a text model

    def media_args(self, extra_args: list[str]) -> list[str]:
        """`--limit-mm-per-prompt` for a vision model, unless the user passes their own."""
        if self.images is None or any(a.startswith("--limit-mm-per-prompt") for a in extra_args):
            return []
        return ["--limit-mm-per-prompt", json.dumps({"image": self.images, "video": 0})]


def image_token_bound(image_processor, max_side: int | None) -> int | None:
    """Most tokens one image becomes under a Qwen-VL style processor (patch, merge, max pixels), when images are
    sent with their long side at most `max_side` (None: as stored); None for other processors."""
    size = dict(getattr(image_processor, "size", None) or {})
    patch, merge = getattr(image_processor, "patch_size", None), getattr(image_processor, "merge_size", None)
    max_pixels = size.get("longest_edge") or getattr(image_processor, "max_pixels", None)
    if not (patch and merge and max_pixels):
        return None
    factor = patch * merge
    bound = max_pixels // (factor * factor)
    if max_side is not None:  # each side rounds to the nearest multiple of the factor
        bound = min(bound, math.ceil(max_side / factor + 0.5) ** 2)
    return bound


def fit_policy_server(model: str, prompts: list[tuple[str, int]], max_new_tokens: int,
                      max_side: int | None) -> ContextFit:
    """The context for serving `prompts` ((text, image count) of every item the phase sends) to `model`."""
    if not prompts:
        return ContextFit()
    images = max(count for _, count in prompts)
    per_image = 0
    vision = _image_processor(model)
    if vision is not None:
        per_image = image_token_bound(vision, max_side)
        if per_image is None:
            log.warning("%s: no image-token rule known for %s; the server keeps the model's context length",
                        model, type(vision).__name__)
            return ContextFit(images=images)
    elif images:
        return ContextFit()  # a text model asked about images: the items say so themselves
    longest = max(len(text.encode("utf-8")) + count * per_image for text, count in prompts)
    length = math.ceil((longest + TEMPLATE_TOKENS + max_new_tokens) / ROUND_TO) * ROUND_TO
    return ContextFit(max_model_len=length, images=images if vision is not None else None)


def _image_processor(model: str):
    """The image processor of a vision model (config and processor files only, no weights); None for a text model
    or when its files cannot be read here (offline without a cache: the server then keeps its defaults)."""
    from transformers import AutoConfig, AutoImageProcessor

    from medix.hub import split_revision
    from medix.models import resolve, served_name

    path, revision = split_revision(resolve(served_name(model)))
    try:
        if getattr(AutoConfig.from_pretrained(path, revision=revision), "vision_config", None) is None:
            return None
        return AutoImageProcessor.from_pretrained(path, revision=revision)
    except (OSError, ValueError) as err:
        log.warning("could not read %s's config to size its server (%s); vLLM's defaults stay", model, err)
        return None


def overflow_error(error: str | None, item_id: str, max_new_tokens: int) -> str | None:
    """A server's context-length refusal, named: which item, how long the context is, which setting to change.
    None when `error` is something else."""
    found = next((m for pattern in _OVERFLOW if (m := pattern.search(error or ""))), None)
    if found is None:
        return None
    prompt = (f"a prompt of {found['length']} tokens with its images" if found["length"]
              else "the prompt with its images")
    return (f"item {item_id} does not fit the policy server's context of {found['limit']} tokens ({prompt}, + "
            f"{max_new_tokens} new tokens): raise --serve-max-model-len (policy_server.max_model_len) or lower "
            f"--max-new-tokens. Server said: {error}")
