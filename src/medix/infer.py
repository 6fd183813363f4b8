"""Ask a (vision-)language model a medical question and get modality, reasoning and answer back.

    medix infer --question "What is the most likely diagnosis?"                  # embedded, offline
    medix infer --model MediX-R1-8B --image scan.png --question "..."            # hub checkpoint
    medix infer --model MediX-R1-8B --server http://127.0.0.1:8000/v1 --image scan.png --question "..."

Python:

    from medix import Assistant
    reply = Assistant().ask("What does a widened mediastinum suggest?")
    print(reply.modality, reply.reasoning, reply.answer, reply.raw)

Backends: local transformers (chat template + greedy `generate`) or any OpenAI-compatible server
(vLLM, SGLang, llama.cpp), images sent as base64 data URLs. Research use only: not for clinical decisions.
"""

from __future__ import annotations

import base64
import io
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medix.data.prompts import build_prompt
from medix.data.response import parse_response
from medix.errors import MedixError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
MAX_IMAGE_SIDE = 1536


@dataclass(frozen=True)
class ZooEntry:
    """A named model: where it lives, which think tag it emits, whether it reads images."""

    hub_id: str
    think_tag: str
    vision: bool


# The released MediX-R1 checkpoints write <thinking>; the embedded default is text-only.
MODEL_ZOO: dict[str, ZooEntry] = {
    "MediX-R1-2B": ZooEntry("MBZUAI/MediX-R1-2B", "thinking", True),
    "MediX-R1-8B": ZooEntry("MBZUAI/MediX-R1-8B", "thinking", True),
    "MediX-R1-30B": ZooEntry("MBZUAI/MediX-R1-30B", "thinking", True),
    DEFAULT_MODEL: ZooEntry(DEFAULT_MODEL, "think", False),
}


def zoo_entry(model: str) -> ZooEntry:
    """Zoo name (case-insensitive) or hub id → entry; anything else is a vision model emitting <think>."""
    for name, entry in MODEL_ZOO.items():
        if model.lower() in (name.lower(), entry.hub_id.lower()):
            return entry
    return ZooEntry(model, "think", True)


@dataclass(frozen=True)
class Reply:
    """One answer: the modality tag (or None), the reasoning, the final answer, the raw text and notes."""

    modality: str | None
    reasoning: str | None
    answer: str | None
    raw: str
    well_formed: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k in ("modality", "reasoning", "answer", "raw")}


def load_image(image):
    """Path / bytes / PIL image → RGB PIL image, downscaled to ≤ MAX_IMAGE_SIDE on the long side."""
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
            name = source.name if isinstance(source, Path) else "upload"
            raise MedixError(f"{name} is not a readable image ({err.__class__.__name__}); "
                             "upload a PNG, JPEG or similar picture") from None
    img = img.convert("RGB")
    if max(img.size) > MAX_IMAGE_SIDE:
        before = img.size
        img = img.copy()
        img.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.LANCZOS)
        img.info["medix_original_size"] = before
        log.info("downscaled image from %sx%s to %sx%s", *before, *img.size)
    return img


def image_data_url(img) -> str:
    """PIL image → `data:image/png;base64,...` for OpenAI-compatible chat messages."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class LocalBackend:
    """transformers on this machine: text-only causal LMs, or image-text-to-text models for vision."""

    def __init__(self, model: str, vision: bool, device: str | None = None):
        self.model_name, self.vision, self.device = model, vision, device
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            try:
                if self.vision:
                    self._loaded = _load_vision(self.model_name, self.device)
                else:
                    from medix.models import load_causal_lm

                    self._loaded = load_causal_lm(self.model_name, self.device)
            except MedixError:
                raise
            except Exception as err:  # a broken folder, unsupported architecture, out of memory...
                raise MedixError(f"cannot load model '{self.model_name}' "
                                 f"({err.__class__.__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
                                 ) from None
        return self._loaded

    def generate(self, prompt: str, image, max_new_tokens: int) -> str:
        """Greedy decoding of the chat-templated prompt; returns only the new text."""
        import torch

        model, processor = self._load()
        content = ([{"type": "image", "image": image}] if image is not None and self.vision else []) + \
            [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content if self.vision else prompt}]
        inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt").to(model.device)
        tokenizer = getattr(processor, "tokenizer", processor)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        new = out[0, inputs["input_ids"].shape[1]:]
        return tokenizer.decode(new, skip_special_tokens=True)


def _load_vision(name: str, device: str | None):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from medix.models import hub_error, pick_device

    device = pick_device(device)
    try:
        processor = AutoProcessor.from_pretrained(name)
        model = AutoModelForImageTextToText.from_pretrained(
            name, dtype="auto" if device.startswith("cuda") else None).to(device).eval()
    except OSError as err:
        raise hub_error(name, err, "vision-language model") from None
    return model, processor


class ServerBackend:
    """Any OpenAI-compatible chat endpoint; the image travels as a base64 PNG data URL."""

    def __init__(self, model: str, base_url: str, timeout_s: float = 300.0):
        import openai

        self.model_name = model
        self.client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
                                    timeout=timeout_s, max_retries=1)
        self.base_url = base_url

    def generate(self, prompt: str, image, max_new_tokens: int) -> str:
        import openai

        content: list[dict] = []
        if image is not None:
            content.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
        content.append({"type": "text", "text": prompt})
        try:
            response = self.client.chat.completions.create(
                model=self.model_name, messages=[{"role": "user", "content": content}],
                temperature=0.0, max_tokens=max_new_tokens)
        except openai.OpenAIError as err:
            raise MedixError(f"server {self.base_url} failed for model '{self.model_name}' "
                             f"({err.__class__.__name__}: {str(err)[:200]})") from None
        return response.choices[0].message.content or ""


class Assistant:
    """Ask medical questions: `Assistant(model).ask(question, image=None)` → `Reply`.

    model: a zoo name (MediX-R1-2B/8B/30B, smollm2-135m), a hub id or a local folder.
    server: base URL of an OpenAI-compatible server; None runs the model locally with transformers.
    """

    def __init__(self, model: str | None = None, server: str | None = None, max_new_tokens: int = 512,
                 think_tag: str | None = None, device: str | None = None):
        self.model = model or DEFAULT_MODEL
        entry = zoo_entry(self.model)
        self.hub_id, self.vision = entry.hub_id, entry.vision
        self.think_tag = think_tag or entry.think_tag
        self.max_new_tokens = max_new_tokens
        self.backend = (ServerBackend(self.hub_id, server) if server
                        else LocalBackend(self.hub_id, entry.vision, device))
        if server:
            self.vision = True  # the server decides; we always send the image

    def ask(self, question: str, image=None) -> Reply:
        """Run the model on `question` (and `image`: a path, bytes or PIL image); never returns silently empty."""
        if not question or not question.strip():
            raise MedixError("the question is empty; type a question about the image")
        img = load_image(image)
        notes = []
        if img is not None and "medix_original_size" in img.info:
            notes.append("image downscaled from {}x{} to {}x{}".format(*img.info["medix_original_size"], *img.size))
        if img is not None and not self.vision:
            notes.append(f"'{self.model}' is text-only: the image was ignored")
            log.info(notes[-1])
            img = None
        prompt = build_prompt(question, self.think_tag)
        raw = self.backend.generate(prompt, img, self.max_new_tokens)
        parsed = parse_response(raw)
        if parsed.answer is None and not parsed.well_formed:
            notes.append("the model did not follow the answer format; showing its raw text")
        return Reply(modality=parsed.modality, reasoning=parsed.reasoning, answer=parsed.answer, raw=raw,
                     well_formed=parsed.well_formed, notes=notes)
