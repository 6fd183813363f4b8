"""The 16 image-modality tags of MediX-R1, in one place.

A solution is written `"<TAG> answer"`; the model is asked to start its response with the tag.
"""

from __future__ import annotations

import re

MODALITY_TAGS: tuple[str, ...] = (
    "X_RAY",
    "MICROSCOPY",
    "CLINICAL_PHOTOGRAPHY",
    "CT_SCAN",
    "GRAPHICS",
    "ANGIOGRAPHY",
    "PET_SCAN",
    "ULTRASOUND",
    "MRI_SCAN",
    "FUNDUS_PHOTOGRAPHY",
    "OCT_SCAN",
    "ENDOSCOPY",
    "MAMMOGRAPHY",
    "FLUOROSCOPY",
    "OTHER",
    "SPECT",
)
_TAG_SET = frozenset(MODALITY_TAGS)

# A leading `<TAG>` (spaces inside the brackets tolerated); the tag text is validated separately so an
# unknown tag can be reported by name.
_LEADING_TAG = re.compile(r"^\s*<\s*([A-Za-z_][A-Za-z0-9_ ]*?)\s*>\s*", re.DOTALL)


def normalize_tag(tag: str) -> str:
    """`' x_ray '` / `'<X_RAY>'` → `'X_RAY'` (no validation)."""
    return tag.strip().strip("<>").strip().upper()


def split_solution(solution: str) -> tuple[str | None, str, str | None]:
    """Split `"<TAG> answer"` into `(tag, answer, unknown)`.

    `tag` is the normalised tag when it is one of the 16, else None. `unknown` holds a leading
    bracketed word that is not a modality tag (so a loader can report it); it is None otherwise.
    Reasoning tags such as `<think>` or `<answer>` are not treated as a modality.
    """
    match = _LEADING_TAG.match(solution)
    if not match:
        return None, solution.strip(), None
    word = normalize_tag(match.group(1))
    if word in _TAG_SET:
        return word, solution[match.end():].strip(), None
    if word.lower() in {"think", "thinking", "answer"}:
        return None, solution.strip(), None
    return None, solution[match.end():].strip(), word
