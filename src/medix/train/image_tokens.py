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
