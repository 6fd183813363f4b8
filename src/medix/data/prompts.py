"""The medical format prompt: a Jinja template users can swap.

    build_prompt("What does the arrow show?")                     # packaged template, <think>
    build_prompt(q, think_tag="thinking")                         # what MediX-R1 checkpoints emit
    build_prompt(q, template="my_prompt.jinja")                   # your own wording
    build_prompt(q, "thinking", template="paper_format.jinja")   # the official layout (paper configs)

A template may place the images with an `<image>` line: `content_parts` then puts the image parts there
(the official layout: instruction, "Question:", image, problem); without it the images come first.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from medix.data.response import MODALITY_TAGS
from medix.errors import MedixError

TEMPLATE_DIR = Path(__file__).parent / "templates"
DEFAULT_TEMPLATE = TEMPLATE_DIR / "medical_format.jinja"


@lru_cache(maxsize=8)
def _load(path: str) -> jinja2.Template:
    file = Path(path)
    if not file.is_file() and (TEMPLATE_DIR / path).is_file():  # a packaged template by name
        file = TEMPLATE_DIR / path
    if not file.is_file():
        raise MedixError(f"prompt template not found: {file} (pass an existing .jinja file or leave it unset)")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
    env.filters["format_tag"] = lambda tag: f"<{tag}>"
    try:
        return env.from_string(file.read_text(encoding="utf-8"))
    except jinja2.TemplateSyntaxError as err:
        raise MedixError(f"prompt template {file}, line {err.lineno}: {err.message}") from None


def build_prompt(problem: str, think_tag: str = "think", template: str | Path | None = None) -> str:
    """Render the format instruction around `problem`."""
    if think_tag not in ("think", "thinking"):
        raise MedixError(f"think_tag must be 'think' or 'thinking', got {think_tag!r}")
    tmpl = _load(str(template or DEFAULT_TEMPLATE))
    try:
        return tmpl.render(problem=problem.strip(), think_tag=think_tag, modality_tags=MODALITY_TAGS).strip()
    except jinja2.UndefinedError as err:
        raise MedixError(f"prompt template {template}: {err.message} (available: problem, think_tag, modality_tags)")


IMAGE_MARK = "<image>"


def content_parts(text: str, n_images: int) -> list[dict]:
    """Chat content for a prompt with `n_images` images: at the template's `<image>` mark (all images at the
    first one; further marks dropped), else before the text."""
    if IMAGE_MARK not in text:
        return [*({"type": "image"} for _ in range(n_images)), {"type": "text", "text": text}]
    before, _, after = text.partition(IMAGE_MARK)
    parts = [{"type": "text", "text": before}] if before else []
    parts += [{"type": "image"} for _ in range(n_images)]
    after = after.replace(IMAGE_MARK, "")
    return parts + ([{"type": "text", "text": after}] if after else [])


def text_only(text: str) -> str:
    """The prompt for a sample without images (or a text-only policy): the `<image>` mark removed."""
    return text.replace(IMAGE_MARK, "")
