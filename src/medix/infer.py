"""Ask a (vision-)language model a medical question and get modality, reasoning and answer back.

    medix infer --question "What is the most likely diagnosis?"                  # embedded, offline
    medix infer --model MediX-R1-8B --image scan.png --question "..."            # hub checkpoint
    medix infer --model MediX-R1-8B --server http://127.0.0.1:8000/v1 --image scan.png --question "..."

Python:

    from medix import Assistant
    reply = Assistant().ask("What does a widened mediastinum suggest?")
    print(reply.modality, reply.reasoning, reply.answer, reply.raw)

Backends: `medix.policy` — local transformers (chat template + greedy `generate`) or any OpenAI-compatible
server (vLLM, SGLang, llama.cpp), images sent as base64 PNG data URLs; the same classes eval's generate phase
asks through. Research use only: not for clinical decisions.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from medix.data.images import MAX_IMAGE_SIDE, load_image  # noqa: F401 (MAX_IMAGE_SIDE re-exported)
from medix.data.prompts import build_prompt
from medix.data.response import parse_response
from medix.errors import MedixError
from medix.safe_text import check_url
from medix.models import SMOLLM2, is_vision_model, served_name, zoo_entry
from medix.policy import LocalPolicy, Request, ServedPolicy

log = logging.getLogger(__name__)

DEFAULT_MODEL = SMOLLM2


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


class Assistant:
    """Ask medical questions: `Assistant(model).ask(question, image=None)` → `Reply`.

    model: a zoo name (MediX-R1-2B/8B/30B, smollm2-135m), a hub id or a local folder.
    server: base URL of an OpenAI-compatible server; None runs the model locally with transformers.
    timeout_s: per-request timeout for `server` (one retry): a dead server fails in about two of these.
    """

    def __init__(self, model: str | None = None, server: str | None = None, max_new_tokens: int = 512,
                 think_tag: str | None = None, device: str | None = None, timeout_s: float = 60.0):
        if max_new_tokens < 1:
            raise MedixError(f"max_new_tokens must be at least 1 (got {max_new_tokens}); the answer needs room "
                             "for the modality tag, the reasoning and the answer (e.g. 512)")
        if timeout_s <= 0:
            raise MedixError(f"the server timeout must be positive (got {timeout_s} s)")
        if server is not None:
            try:
                server = check_url(server)
            except ValueError as err:
                raise MedixError(f"--server: {err}") from None
        self.model = model or DEFAULT_MODEL
        self.hub_id = served_name(self.model)
        self.vision = True if server else is_vision_model(self.model)  # a server decides; we always send the image
        self.think_tag = think_tag or zoo_entry(self.model).think_tag
        self.max_new_tokens = max_new_tokens
        self.backend = (ServedPolicy(self.hub_id, server, max_new_tokens=max_new_tokens, api_key_env="OPENAI_API_KEY",
                                     timeout_s=timeout_s, max_retries=1) if server
                        else LocalPolicy(self.hub_id, self.vision, device, max_new_tokens=max_new_tokens))

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
        [answer] = self.backend.generate([Request(prompt, (img,) if img is not None else ())])
        if not answer.ok:  # a server's names the server, the model, the HTTP status and the server's reason
            raise MedixError(answer.error)
        raw = answer.text
        parsed = parse_response(raw)
        if parsed.answer is None and not parsed.well_formed:
            notes.append("the model did not follow the answer format; showing its raw text")
        return Reply(modality=parsed.modality, reasoning=parsed.reasoning, answer=parsed.answer, raw=raw,
                     well_formed=parsed.well_formed, notes=notes)
