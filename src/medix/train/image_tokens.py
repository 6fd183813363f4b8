"""How many tokens an image becomes in a vision prompt, from its size alone (no pixel decoding).

A Qwen-VL processor resizes every image to a multiple of patch × merge pixels inside [min_pixels,
max_pixels] ("smart resize"), cuts it into patch × patch squares and merges merge × merge of them into one
token: the count follows from (height, width). transformers exposes this as the processor's
`_get_num_multimodal_tokens(image_sizes=...)` (what vLLM uses to place image tokens before it has pixels).
Processors without it return None here and the caller processes the decoded image instead.

    image_token_counts(processor, [image_size("scan.jpg")])   # [num_tokens]
"""

from __future__ import annotations

import io
import logging

from PIL import Image

log = logging.getLogger(__name__)


def image_size(image) -> tuple[int, int]:
    """(height, width) of a path, a {bytes, path} entry or a PIL image, read from the file header.

    EXIF orientation (which datasets applies when it decodes) is left out: a Qwen-VL smart resize of
    (width, height) is the transpose of that of (height, width), the same number of tokens."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, dict):
        image = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
    with Image.open(image) as img:
        return img.height, img.width


def image_token_counts(processing, sizes: list[tuple[int, int]]) -> list[int] | None:
    """Image tokens each (height, width) expands to under `processing`'s current settings; None when the
    processor cannot say without pixels."""
    counter = getattr(processing, "_get_num_multimodal_tokens", None)
    image_processor = getattr(processing, "image_processor", None)
    if counter is None or image_processor is None or getattr(image_processor, "do_resize", True) is False:
        return None  # without the resize the count depends on the processor's own handling of raw sizes
    try:
        counts = counter(image_sizes=sizes).num_image_tokens
    except (NotImplementedError, AttributeError, TypeError, KeyError) as err:
        log.info("%s cannot count image tokens from sizes (%s); processing images instead",
                 type(processing).__name__, err)
        return None
    return None if counts is None else list(counts)


def fixed_size_images(processing):
    """A function that resizes one image to the size `processing` would give it (Qwen-VL's smart resize to the
    policy's [min_pixels, max_pixels]); None for processors without that rule.

    TRL builds the colocated vLLM engine from the model name, so vLLM's processor keeps the checkpoint's own
    pixel bounds (Qwen3-VL: up to 16.7 MP) while the trainer's has the run's (paper: 262,144-4,194,304): the
    rollout would see each image at one resolution and the update at another. An image already at its target
    size (a multiple of patch × merge inside both bounds) is left as it is by both processors, so images are
    resized once, here, before TRL sees them. Resampling is the processor's own (bicubic for Qwen-VL)."""
    image_processor = getattr(processing, "image_processor", None)
    size = dict(getattr(image_processor, "size", None) or {})
    patch, merge = getattr(image_processor, "patch_size", None), getattr(image_processor, "merge_size", None)
    if not (patch and merge and size.get("shortest_edge") and size.get("longest_edge")):
        return None
    return FixedSize(size["shortest_edge"], size["longest_edge"], patch * merge,
                     getattr(image_processor, "resample", Image.BICUBIC))


class FixedSize:
    """Resize an image to its Qwen-VL smart-resize target (a callable class: it pickles with the dataset)."""

    def __init__(self, min_pixels: int, max_pixels: int, factor: int, resample):
        self.min_pixels, self.max_pixels, self.factor, self.resample = min_pixels, max_pixels, factor, resample

    def __call__(self, image: Image.Image) -> Image.Image:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        image = image.convert("RGB")
        height, width = smart_resize(image.height, image.width, factor=self.factor, min_pixels=self.min_pixels,
                                     max_pixels=self.max_pixels)
        if (height, width) == (image.height, image.width):
            return image
        return image.resize((width, height), resample=self.resample)

    def rows(self, batch: dict) -> dict:
        """A `Dataset.with_transform` function over the `images` column (undecoded entries pass as they are)."""
        batch["images"] = [[self(i) if isinstance(i, Image.Image) else i for i in row or []]
                           for row in batch["images"]]
        return batch
