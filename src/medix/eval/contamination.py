"""`medix eval contamination --train DATA`: eval items that overlap the training set.

Text: an item is flagged when its question shares a word 13-gram (lower-cased, punctuation dropped) with
any training problem or solution — the GPT-3 / lm-evaluation-harness decontamination rule. Images: flagged
when a training image has the same 64-bit difference hash (dHash, 9×8 greyscale gradients) within
`max_hamming` bits, which survives re-encoding and resizing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from medix.data.datasets import load_samples
from medix.eval.records import EvalItem

_WORD = re.compile(r"[a-z0-9]+")


def ngrams(text: str, n: int = 13) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def dhash(image) -> int:
    """64-bit difference hash of a path or PIL image."""
    img = image if isinstance(image, Image.Image) else Image.open(image)
    pixels = np.asarray(img.convert("L").resize((9, 8), Image.LANCZOS), dtype=np.int16)  # (8, 9)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def find_contamination(items: list[EvalItem], train: str | Path, n: int = 13, max_hamming: int = 4,
                       check_images: bool = True) -> list[dict]:
    """One dict per flagged item: task, id, reason ('text' / 'image'), the shared n-gram or hash distance."""
    samples = load_samples(str(train), check_images=False)
    train_grams: set[tuple[str, ...]] = set()
    train_hashes: list[int] = []
    for s in samples:
        train_grams |= ngrams(f"{s.problem} {s.solution}", n)
        if check_images:
            for image in s.images:
                try:
                    train_hashes.append(dhash(image))
                except OSError:
                    continue
    hashes = np.array(train_hashes, dtype=np.uint64)
    flagged = []
    for item in items:
        shared = ngrams(item.question, n) & train_grams
        if shared:
            flagged.append({"task": item.task, "id": item.id, "reason": "text", "ngram": " ".join(sorted(shared)[0])})
            continue
        for path in item.images if check_images and hashes.size else []:
            try:
                h = np.uint64(dhash(path))
            except OSError:
                continue
            distance = int(min(bin(int(x)).count("1") for x in np.bitwise_xor(hashes, h)))
            if distance <= max_hamming:
                flagged.append({"task": item.task, "id": item.id, "reason": "image", "hamming": distance})
                break
    return flagged
