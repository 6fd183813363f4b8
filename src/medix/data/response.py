"""The MediX-R1 response format: the 16 image-modality tags, a response parsed into modality, reasoning and
answer, and a reference `"<TAG> answer"` split into its tag and answer.

Expected shape (MediX-R1):  `<CT_SCAN> <think> ...reasoning... </think> <answer> ...final... </answer>`

The model is asked to start its response with the tag of the image's modality; a solution is written
`"<TAG> answer"`. The released checkpoints write `<thinking>` instead of `<think>`; both are accepted unless the
caller narrows `think_tags`. Whitespace inside tag brackets (`< answer >`, `</ think>`) and tag case are
tolerated, because small policies produce them and they carry the same meaning.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache

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
LEADING_TAG = re.compile(r"^\s*<\s*([A-Za-z_][A-Za-z0-9_ ]*?)\s*>\s*", re.DOTALL)


def normalize_tag(tag: str) -> str:
    """`' x_ray '` / `'<X_RAY>'` → `'X_RAY'` (no validation)."""
    return tag.strip().strip("<>").strip().upper()


def split_solution(solution: str) -> tuple[str | None, str, str | None]:
    """Split `"<TAG> answer"` into `(tag, answer, unknown)`.

    `tag` is the normalised tag when it is one of the 16, else None. `unknown` holds a leading
    bracketed word that is not a modality tag (so a loader can report it); it is None otherwise.
    Reasoning tags such as `<think>` or `<answer>` are not treated as a modality.
    """
    match = LEADING_TAG.match(solution)
    if not match:
        return None, solution.strip(), None
    word = normalize_tag(match.group(1))
    if word in _TAG_SET:
        return word, solution[match.end():].strip(), None
    if word.lower() in {"think", "thinking", "answer"}:
        return None, solution.strip(), None
    return None, solution[match.end():].strip(), word


DEFAULT_THINK_TAGS: tuple[str, ...] = ("think", "thinking")

_MODALITY_ONLY = re.compile(r"^<\s*([A-Za-z_]+)\s*>$")


@dataclass(frozen=True)
class ParsedResponse:
    """What a response says, piece by piece. Fields are None when the piece is missing."""

    modality: str | None  # normalised tag (e.g. "CT_SCAN") iff the text before the think block is one known tag
    reasoning: str | None  # inside the first think block
    answer: str | None  # inside the first complete answer block
    well_formed: bool  # from the first think tag on: one think block, one answer block, only whitespace after
    prefix: str  # raw text before the first think tag (or before the answer when there is no think tag)

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=16)
def _patterns(think_tags: tuple[str, ...]) -> dict[str, re.Pattern]:
    names = "|".join(re.escape(t) for t in sorted(think_tags, key=len, reverse=True))
    think_open = rf"<\s*(?:{names})\s*>"
    think_close = rf"<\s*/\s*(?:{names})\s*>"
    ans_open, ans_close = r"<\s*answer\s*>", r"<\s*/\s*answer\s*>"
    any_tag = rf"(?:{think_open}|{think_close}|{ans_open}|{ans_close})"
    body = rf"(?:(?!{any_tag}).)*"  # text containing no think/answer tag at all
    flags = re.DOTALL | re.IGNORECASE
    return {
        "think_open": re.compile(think_open, flags),
        "think_block": re.compile(rf"{think_open}(.*?){think_close}", flags),
        "answer_open": re.compile(ans_open, flags),
        "answer_block": re.compile(rf"{ans_open}(.*?){ans_close}", flags),
        # The paper's format rule, applied to the text from the first think tag on. Open and close tags
        # must use the same name: `<think>…</thinking>` is a malformed block.
        "well_formed": re.compile(
            r"\A(?:"
            + "|".join(
                rf"<\s*{re.escape(t)}\s*>{body}<\s*/\s*{re.escape(t)}\s*>" for t in think_tags
            )
            + rf")\s*{ans_open}{body}{ans_close}\s*\Z",
            flags,
        ),
    }


def parse_response(text: str, think_tags: tuple[str, ...] = DEFAULT_THINK_TAGS) -> ParsedResponse:
    """Split `text` into `ParsedResponse`; never raises on any string."""
    p = _patterns(tuple(think_tags))
    think_start = p["think_open"].search(text)
    if think_start:
        prefix, tail = text[: think_start.start()], text[think_start.start():]
    else:
        answer_start = p["answer_open"].search(text)
        prefix = text[: answer_start.start()] if answer_start else ""
        tail = text[answer_start.start():] if answer_start else text

    think = p["think_block"].search(tail) if think_start else None
    # Look for the answer after the reasoning, so an `<answer>` quoted inside the think block is not it.
    answer_region = tail[think.end():] if think else tail
    answer = p["answer_block"].search(answer_region)

    only_tag = _MODALITY_ONLY.match(prefix.strip())
    modality = only_tag.group(1).upper() if only_tag and only_tag.group(1).upper() in _TAG_SET else None
    return ParsedResponse(
        modality=modality,
        reasoning=think.group(1).strip() if think else None,
        answer=answer.group(1).strip() if answer else None,
        well_formed=bool(think_start) and bool(p["well_formed"].match(tail)),
        prefix=prefix,
    )
