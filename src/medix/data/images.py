"""Images for the model: any path / bytes / PIL image → an RGB PIL image (downscaled), and data URLs
for OpenAI-compatible chat messages. Used by `medix infer`, the web demo and eval generation."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

from medix.errors import MedixError

log = logging.getLogger(__name__)
MAX_IMAGE_SIDE = 1536


def load_image(image, max_side: int | None = MAX_IMAGE_SIDE):
    """Path / bytes / PIL image → RGB PIL image, downscaled to ≤ `max_side` on the long side (None: as is)."""
    from PIL import Image, UnidentifiedImageError

    if image is None:
        return None
    if isinstance(image, Image.Image):
        img = image
    else:
        source = io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else Path(image)
        if isinstance(source, Path) and not source.is_file():
            raise MedixError(f"image not found: {source}")
        try:
            img = Image.open(source)
            img.load()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as err:
            name = str(source) if isinstance(source, Path) else "the upload"
            raise MedixError(f"{name} is not a readable image ({err.__class__.__name__}); "
                             "upload a PNG, JPEG or similar picture") from None
    img = img.convert("RGB")
    if max_side is not None and max(img.size) > max_side:
        before = img.size
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.LANCZOS)
        img.info["medix_original_size"] = before
        log.info("downscaled image from %sx%s to %sx%s", *before, *img.size)
    return img


def openai_content(text: str, images: list, fmt: str = "PNG") -> list[dict]:
    """The content parts of an OpenAI-compatible user message: each PIL image as a data URL, then the text."""
    return [*({"type": "image_url", "image_url": {"url": image_data_url(img, fmt)}} for img in images),
            {"type": "text", "text": text}]


def image_data_url(img, fmt: str = "PNG") -> str:
    """PIL image → `data:image/<fmt>;base64,...` for OpenAI-compatible chat messages."""
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")
