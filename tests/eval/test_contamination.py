"""`medix eval contamination`: a planted 13-gram overlap and a planted near-duplicate image are found, a
12-word overlap and distinct images are not, and clean data gives none."""

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from helpers.eval_data import write_jsonl
from medix.cli import app

# 13 words shared with a training problem (the decontamination unit), and a 12-word overlap that must not count.
PLANTED = "a forty year old man presents with sudden painless loss of vision today"
SHORT = " ".join(PLANTED.split()[:12])


def texture(seed: int, size: int = 96) -> Image.Image:
    """A smooth random texture: structure a difference hash can see (a flat image hashes to 0)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.BICUBIC)


def setup(tmp_path, train_text: str, train_seeds=(0, 1, 2)):
    """Training rows (text + images from `train_seeds`) and a rad_vqa mirror whose image 'near.jpg' is derived
    from texture 1."""
    train_dir, mirror = tmp_path / "train", tmp_path / "data" / "rad_vqa"
    train_dir.mkdir()
    mirror.mkdir(parents=True)
    for n, seed in enumerate(train_seeds):
        texture(seed).save(train_dir / f"t{n}.png")
    write_jsonl(train_dir / "train.jsonl", [
        {"problem": f"{train_text} What is the diagnosis?", "solution": "<X_RAY> Central retinal artery occlusion",
         "images": ["t0.png"]},
        {"problem": "Which bone is fractured?", "solution": "<X_RAY> Scaphoid", "images": ["t1.png"]},
        {"problem": "Name the lesion.", "solution": "<CT_SCAN> Meningioma", "images": ["t2.png"]},
    ])
    # The near duplicate: a training image shrunk, brightened a little and re-encoded as JPEG.
    near = texture(1).resize((72, 72), Image.LANCZOS).point(lambda v: min(255, v + 6))
    near.save(mirror / "near.jpg", quality=85)
    for seed in (10, 11, 12):
        texture(seed).save(mirror / f"e{seed}.png")
    write_jsonl(mirror / "test.jsonl", [
        {"question": f"History: {PLANTED} since this morning. Cause?", "answer": "CRAO", "image": "e10.png"},
        {"question": "Which carpal bone?", "answer": "scaphoid", "image": "near.jpg"},
        {"question": f"{SHORT} twice. Cause?", "answer": "x", "image": "e11.png"},
        {"question": "Is there a fracture?", "answer": "no", "image": "e12.png"},
    ])
    return train_dir / "train.jsonl"


def contamination(tmp_path, train) -> list[dict]:
    out = tmp_path / "flagged.jsonl"
    result = CliRunner().invoke(app, ["eval", "contamination", "--train", str(train), "--tasks", "rad_vqa",
                                      "--data-dir", str(tmp_path / "data"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "of 4 eval items overlap the training set" in result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_planted_overlap_and_near_duplicate_are_found(tmp_path):
    flagged = contamination(tmp_path, setup(tmp_path, f"Case: {PLANTED}."))
    assert [(f["id"], f["reason"]) for f in flagged] == [("0", "text"), ("1", "image")]
    assert flagged[0]["ngram"] == PLANTED and flagged[1]["hamming"] <= 4


def test_clean_data_gives_none(tmp_path):
    clean = "a seventy year old woman reports gradual blurring of central vision over several months in both eyes"
    assert contamination(tmp_path, setup(tmp_path, clean, train_seeds=(20, 21, 22))) == []
