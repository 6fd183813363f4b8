"""Lazy, cached, length-filtered training data: `load_rows` (data/datasets.py), `prepare` (train/trl_rows.py)
and the image-token count from image sizes (train/image_tokens.py)."""

import io
import json
import logging

import datasets
import pytest
from PIL import Image

from medix.data.datasets import load_rows
from medix.errors import MedixError
from medix.testing.tiny import tiny_qwen3_vl
from medix.train.config import ModelConfig, load_train_config
from medix.train.trl_rows import (
    messages,
    prepare,
    processed_prompt_tokens,
    prompt_tokens,
)
from medix.train.image_tokens import image_size, image_token_counts
from medix.train.policy import prepare_policy


@pytest.fixture(scope="module")
def processor():
    return tiny_qwen3_vl()[1]


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A fresh datasets cache per test, so that cache hits are this test's own."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    return tmp_path / "hf"


def _data_cfg(path, *extra):
    return load_train_config(None, [f"data.train={path}", *extra]).data


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _real_images(benchmarks_dir, n):
    """Real scans and slides of different sizes and aspect ratios from the VQA-RAD and PathVQA mirrors."""
    files = sorted((benchmarks_dir / "rad_vqa" / "images").iterdir())[: n // 2]
    files += sorted((benchmarks_dir / "path_vqa" / "images").iterdir())[: n - len(files)]
    return [str(f) for f in files]


# Pixel ranges: the tiny processor's own (64×64 at most), a middle one, and the official 262144..4194304.
PIXELS = [(None, None), (128 * 128, 512 * 512), (262144, 4194304)]


@pytest.mark.parametrize("min_pixels,max_pixels", PIXELS)
def test_image_tokens_from_sizes_equal_what_the_processor_gives(benchmarks_dir, min_pixels, max_pixels,
                                                                monkeypatch):
    """The length filter's count (image sizes only) equals the processor's when it processes the decoded
    images, on real benchmark images, for prompts with one and with two images."""
    model, processor = tiny_qwen3_vl()
    prepare_policy(model, processor, ModelConfig(min_pixels=min_pixels, max_pixels=max_pixels))
    images = _real_images(benchmarks_dir, 12 if min_pixels != 262144 else 4)
    sizes = {(h, w) for h, w in map(image_size, images)}
    assert len(sizes) >= 3  # several sizes and aspect ratios
    cfg = _data_cfg("x.jsonl")
    cases = [[i] for i in images] + [images[:2]]
    expected = []
    for case in cases:
        text = processor.apply_chat_template(messages("Which organ is shown?", len(case), cfg, True),
                                             add_generation_prompt=True, tokenize=False)
        expected.append(processed_prompt_tokens(processor, text, case))

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "convert", no_decoding)  # the count must come from the headers alone
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)
    counted = [prompt_tokens(processor, messages("Which organ is shown?", len(c), cfg, True), c) for c in cases]
    assert counted == expected
    assert len(set(expected)) > 1  # the sizes really change the count


def test_image_tokens_follow_the_smart_resize_by_hand(processor):
    """Hand-computed Qwen-VL counts for the tiny processor (patch 16, merge 2 → 32-px cells, 1024..4096 px):
    64×64 → 2×2 cells = 4 tokens; 20×20 is scaled up to 32×32 = 1; 1000×200 is scaled down to 128×32 = 4."""
    assert image_token_counts(processor, [(64, 64), (20, 20), (1000, 200)]) == [4, 1, 4]
    assert image_size({"bytes": _png_bytes((30, 70)), "path": None}) == (70, 30)


def test_processor_without_size_counting_processes_the_image(tmp_path, processor):
    """A processor that cannot count from sizes falls back to processing the decoded image (same number)."""
    class NoSizeCounting:
        def __init__(self, inner):
            self.inner, self.image_processor, self.tokenizer = inner, inner.image_processor, inner.tokenizer

        def apply_chat_template(self, *args, **kwargs):
            return self.inner.apply_chat_template(*args, **kwargs)

        def __call__(self, **kwargs):
            self.calls = getattr(self, "calls", 0) + 1
            return self.inner(**kwargs)

    Image.new("RGB", (200, 90), (10, 200, 30)).save(tmp_path / "a.png")
    prompt = messages("Q?", 1, _data_cfg("x.jsonl"), True)
    fallback = NoSizeCounting(processor)
    assert image_token_counts(fallback, [(90, 200)]) is None
    assert prompt_tokens(fallback, prompt, [str(tmp_path / "a.png")]) == prompt_tokens(
        processor, prompt, [str(tmp_path / "a.png")])
    assert fallback.calls == 1


def _png_bytes(size, color=(120, 40, 200)):
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_rows_stay_lazy_and_images_decode_on_access(tmp_path, hf_cache, processor):
    """prepare returns a memory-mapped dataset whose images are stored as paths and come out as PIL images
    when a row is read (what TRL does per batch)."""
    (tmp_path / "img").mkdir()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "img" / "a.png")
    data = _write_jsonl(tmp_path / "d.jsonl", [
        {"image": ["img/a.png"], "problem": "What is red?", "solution": "<OTHER> a square"},
        {"image": [], "problem": "Text only?", "solution": "yes"}])
    prepared = prepare(str(data), _data_cfg(data), processor, vision=True)
    ds = prepared.dataset
    assert ds.cache_files and all(str(hf_cache) in f["filename"] for f in ds.cache_files)  # on disk, mapped
    stored = ds.cast_column("images", datasets.List(datasets.Image(decode=False)))[0]["images"][0]
    assert stored == {"bytes": None, "path": str(tmp_path / "img" / "a.png")}
    first = ds[0]
    # decoded, at the size the policy's processor gives it (so vLLM's processor sees the same pixels)
    grid = processor.image_processor(images=[Image.open(tmp_path / "img" / "a.png")])["image_grid_thw"][0]
    patch = processor.image_processor.patch_size
    assert isinstance(first["images"][0], Image.Image)
    assert first["images"][0].size == (int(grid[2]) * patch, int(grid[1]) * patch)
    assert ds[1]["images"] == [] and set(ds.column_names) == {"id", "problem", "solution", "prompt", "images"}
    assert [p["type"] for p in first["prompt"][-1]["content"]] == ["image", "text"]


def test_vision_prompt_with_system_prompt_and_few_shot(tmp_path, hf_cache, processor):
    """Every turn of a vision prompt is a list of parts (Arrow cannot mix strings and lists in one column), the
    images sit in the question's turn, and TRL fills them in there."""
    from trl.data_utils import prepare_multimodal_messages

    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    data = _write_jsonl(tmp_path / "d.jsonl",
                        [{"image": "a.png", "problem": "Which organ?", "solution": "<MRI_SCAN> brain"}])
    cfg = _data_cfg(data, "data.system_prompt='Be brief.'",
                    "data.few_shot=[{problem: 'Example?', response: '<OTHER> <think>x</think><answer>y</answer>'}]")
    row = prepare(str(data), cfg, processor, vision=True).dataset[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user", "assistant", "user"]
    filled = prepare_multimodal_messages(row["prompt"], images=row["images"])
    assert [p["type"] for p in filled[-1]["content"]] == ["image", "text"] and "image" in filled[-1]["content"][0]
    assert all(p["type"] == "text" for m in filled[:-1] for p in m["content"])


def test_filter_runs_once_and_later_calls_read_the_cache(tmp_path, hf_cache, processor, monkeypatch):
    """A second prepare on the unchanged file measures nothing again (datasets' fingerprint cache); an
    edited file is read and measured again."""
    import medix.train.trl_rows as module

    calls = []
    real = module.prompt_tokens
    monkeypatch.setattr(module, "prompt_tokens", lambda *a, **k: calls.append(1) or real(*a, **k))
    rows = [{"problem": f"Question {i}?", "solution": "<X_RAY> answer"} for i in range(6)]
    data = _write_jsonl(tmp_path / "d.jsonl", rows)
    first = prepare(str(data), _data_cfg(data), processor, vision=True)
    assert len(calls) == 6
    again = prepare(str(data), _data_cfg(data), processor, vision=True)
    assert len(calls) == 6 and again.dataset["id"] == first.dataset["id"]
    _write_jsonl(data, rows[:4])
    assert len(prepare(str(data), _data_cfg(data), processor, vision=True).dataset) == 4 and len(calls) == 10
    entered = []

    class Recorder:
        def __enter__(self):
            entered.append("in")

        def __exit__(self, *exc):
            entered.append("out")

    prepare(str(data), _data_cfg(data, "data.max_prompt_tokens=100000"), processor, True, main_process_first=Recorder)
    assert entered == ["in", "out"] and len(calls) == 10  # another limit: the lengths are reused, only refiltered
    prepare(str(data), _data_cfg(data, "data.system_prompt='Be brief.'"), processor, True)
    assert len(calls) == 14  # another prompt format: measured again


def _mixed_parquet(path, n_good=5):
    """MBZUAI/medix-rl-data layout: `image` is a list of encoded images (decoded Image feature on read)."""
    # widths 32, 64, ... px at height 32: 1, 2, 3, 4, 4 image tokens under the tiny processor (1024..4096 px)
    rows = [{"image": [_png_bytes((32 * (i + 1), 32))], "problem": f"Q{i}?", "solution": "<CT_SCAN> liver"}
            for i in range(n_good)]
    rows.insert(1, {"image": [], "problem": "Q?", "solution": ""})
    rows.insert(3, {"image": [], "problem": "", "solution": "<CT_SCAN> x"})
    features = datasets.Features({"image": datasets.List(datasets.Image()), "problem": datasets.Value("string"),
                                  "solution": datasets.Value("string")})
    table = datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)
    table = table.cast_column("image", datasets.List(datasets.Image()))
    table.to_parquet(str(path))
    return path


@pytest.mark.parametrize("kind", ["parquet", "hub"])
def test_image_bytes_validated_lazily_with_limit_and_skip(tmp_path, hf_cache, caplog, monkeypatch, kind):
    """A local parquet (streamed) and a hub split (an Arrow table with a decoding Image feature, validated by
    Dataset.map in windows when `limit` is set) keep their images encoded; bad rows name the source, row and
    field (row numbers of the source, also in later windows); skip counts them."""
    data = _mixed_parquet(tmp_path / "train.parquet")
    source = str(data)
    if kind == "hub":
        monkeypatch.setattr("medix.data.datasets._hub_dataset",
                            lambda spec, revision=None: datasets.Dataset.from_parquet(str(data)))
        source = "org/medical-rows@train"
    with pytest.raises(MedixError, match=rf"{source}, row 2, field 'solution': missing"):
        load_rows(source)
    with caplog.at_level(logging.WARNING):
        rows = load_rows(source, limit=3, on_invalid="skip")
    assert rows["problem"] == ["Q0?", "Q1?", "Q2?"]
    assert "row 2, field 'solution'" in caplog.text and "row 4, field 'problem'" in caplog.text
    assert "skipped 2 invalid row(s), kept 3" in caplog.text
    image = rows[0]["images"][0]
    assert image["bytes"] == _png_bytes((32, 32)) and rows[0]["image_sizes"] == [[32, 32]]
    assert rows.features["images"] == datasets.List(datasets.Image(decode=False))
    assert len(load_rows(source, on_invalid="skip")) == 5
    assert isinstance(load_rows(source, on_invalid="skip", decode_images=True)[0]["images"][0], Image.Image)


def test_parquet_bytes_prepare_counts_and_drops_long_prompts(tmp_path, hf_cache, processor):
    data = _mixed_parquet(tmp_path / "train.parquet")
    cfg = _data_cfg(data, "data.on_invalid=skip")
    prompt_len = prompt_tokens(processor, messages("Q0?", 0, cfg, True))
    cfg.max_prompt_tokens = prompt_len + 2 + 1  # + vision start/end + 1 token: only 32×32 (one 32-px cell) fits
    prepared = prepare(str(data), cfg, processor, vision=True)
    assert (prepared.loaded, len(prepared.dataset), prepared.too_long) == (5, 1, 4)
    assert prepared.dataset[0]["images"][0].size == (32, 32)
    text = prepare(str(data), cfg, processor, vision=False)
    assert text.images_dropped == 5 and "images" not in text.dataset.column_names


def test_num_proc_gives_the_same_rows(tmp_path, hf_cache, processor):
    Image.new("RGB", (90, 40)).save(tmp_path / "a.png")
    rows = [{"image": ["a.png"] * (i % 3), "problem": "word " * i + "?", "solution": "<X_RAY> a"} for i in range(12)]
    data = _write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = _data_cfg(data)
    cfg.max_prompt_tokens = prompt_tokens(processor, messages("?", 0, cfg, True)) + 6  # the later rows are longer
    one = prepare(str(data), cfg, processor, vision=True)
    cfg.num_proc = 2
    two = prepare(str(data), cfg, processor, vision=True)
    assert one.too_long == two.too_long > 0
    assert one.dataset.remove_columns("images").to_list() == two.dataset.remove_columns("images").to_list()


def test_bad_json_rows_and_empty_file(tmp_path, hf_cache):
    bad = tmp_path / "e.jsonl"
    bad.write_text('{"problem": "Q", "solution": "a"}\n[1, 2]\n')
    with pytest.raises(MedixError, match=r"e.jsonl, row 2: expected a JSON object"):
        load_rows(bad)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(MedixError, match="no usable rows"):
        load_rows(tmp_path / "empty.jsonl")
    (tmp_path / "list.json").write_text('[{"problem": "Q", "solution": "a"}, "oops"]')
    with pytest.raises(MedixError, match=r"list.json, row 2: expected (a JSON |an )object"):
        load_rows(tmp_path / "list.json")


@pytest.mark.slow
def test_bench_smoke_runs_old_and_new_and_they_agree(benchmarks_dir):
    """bench/data_prep.py --smoke: both codes run in their own processes on real mirror images and keep the
    same rows (the table has no MISMATCH line)."""
    import subprocess
    import sys

    from helpers import REPO

    done = subprocess.run([sys.executable, str(REPO / "bench" / "data_prep.py"), "--smoke", "--markdown",
                           "--benchmarks", str(benchmarks_dir)], check=False, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| jsonl")]
    assert [r.split("|")[3].strip() for r in rows] == ["new", "old"]
    kept_and_too_long = [tuple(c.strip() for c in r.split("|")[4:6]) for r in rows]
    assert kept_and_too_long == [("29", "1")] * 2 and "MISMATCH" not in done.stdout  # the 8th is too long
