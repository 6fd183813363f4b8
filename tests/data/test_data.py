import json
import re

import pytest
from PIL import Image

from medix.data.datasets import load_samples
from medix.data.prompts import build_prompt
from medix.data.response import MODALITY_TAGS, split_solution
from medix.errors import MedixError


def test_sixteen_tags_in_one_place():
    assert len(MODALITY_TAGS) == len(set(MODALITY_TAGS)) == 16


@pytest.mark.parametrize("solution,expected", [
    ("<CT_SCAN> Acute appendicitis", ("CT_SCAN", "Acute appendicitis", None)),
    ("< x_ray >  Pneumonia", ("X_RAY", "Pneumonia", None)),
    ("Vitamin C", (None, "Vitamin C", None)),
    ("<BRAIN> glioma", (None, "glioma", "BRAIN")),
])
def test_split_solution(solution, expected):
    assert split_solution(solution) == expected


def test_prompt_template_and_think_tag(tmp_path):
    text = build_prompt("What is shown?", think_tag="thinking")
    assert text.startswith("What is shown?") and "<thinking>" in text and "<answer>" in text
    assert all(f"<{t}>" in text for t in MODALITY_TAGS)
    custom = tmp_path / "p.jinja"
    custom.write_text("Q: {{ problem }} use <{{ think_tag }}>")
    assert build_prompt("x", template=custom) == "Q: x use <think>"
    with pytest.raises(MedixError, match="not found"):
        build_prompt("x", template=tmp_path / "missing.jinja")


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_local_jsonl_with_relative_images(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "img" / "a.png")
    data = _write(tmp_path / "train.jsonl", [
        {"image": ["img/a.png"], "problem": "Q1", "solution": "<X_RAY> A1"},
        {"image": [], "problem": "Q2", "solution": "A2", "id": "x2"},
    ])
    samples = load_samples(data)
    assert samples[0].images == [str(tmp_path / "img" / "a.png")] and samples[0].modality == "X_RAY"
    assert samples[1].id == "x2" and samples[1].images == [] and samples[1].answer == "A2"


@pytest.mark.parametrize("row,message", [
    ({"problem": "Q"}, r"row 1, field 'solution': missing"),
    ({"solution": "<X_RAY> a"}, r"row 1, field 'problem': missing"),
    ({"problem": "Q", "solution": "<HEAD_CT> bleed"}, r"field 'solution': unknown modality tag <HEAD_CT>"),
    ({"problem": "Q", "solution": "<X_RAY>"}, r"has a tag but no answer"),
    ({"problem": "Q", "solution": "<X_RAY> a", "image": ["nope.png"]}, r"field 'image': unreadable image"),
])
def test_validation_names_file_row_field(tmp_path, row, message):
    data = _write(tmp_path / "bad.jsonl", [row])
    with pytest.raises(MedixError, match=message) as err:
        load_samples(data)
    assert "bad.jsonl" in str(err.value)


def test_corrupt_image_and_bad_json(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    data = _write(tmp_path / "d.jsonl", [{"problem": "Q", "solution": "<X_RAY> a", "image": "broken.png"}])
    with pytest.raises(MedixError, match="unreadable image"):
        load_samples(data)
    bad = tmp_path / "e.jsonl"
    bad.write_text('{"problem": "Q", "solution": "a"}\n{oops\n')
    with pytest.raises(MedixError, match=r"e.jsonl, row 2: not valid JSON"):
        load_samples(bad)


def test_skip_invalid_rows_and_empty(tmp_path):
    data = _write(tmp_path / "d.jsonl", [{"problem": "Q", "solution": "a"}, {"problem": "Q"}])
    assert len(load_samples(data, on_invalid="skip")) == 1
    with pytest.raises(MedixError, match="no usable rows"):
        load_samples(_write(tmp_path / "e.jsonl", [{"problem": "Q"}]), on_invalid="skip")
    (tmp_path / "x.csv").write_text("problem,solution\n")
    with pytest.raises(MedixError, match="unsupported file type '.csv'"):
        load_samples(tmp_path / "x.csv")


def test_parquet_and_json(tmp_path):
    import datasets

    rows = [{"problem": "Q", "solution": "<CT_SCAN> a", "image": []}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    (tmp_path / "d.json").write_text(json.dumps(rows))
    assert load_samples(tmp_path / "d.parquet")[0].modality == "CT_SCAN"
    assert load_samples(tmp_path / "d.json")[0].answer == "a"


def test_real_benchmark_rows_with_images(benchmarks_dir, tmp_path):
    """Real VQA-RAD rows (image paths relative to the task folder) become valid samples."""
    source = benchmarks_dir / "rad_vqa" / "test.jsonl"
    rows = [json.loads(line) for line in source.open()][:20]
    converted = [{"image": [str(benchmarks_dir / "rad_vqa" / r["image"])], "problem": r["question"],
                  "solution": f"<OTHER> {r['answer']}"} for r in rows]
    samples = load_samples(_write(tmp_path / "rad.jsonl", converted))
    assert len(samples) == 20 and all(len(s.images) == 1 for s in samples)


def test_hub_spec_without_split():
    with pytest.raises(MedixError, match="add the split"):
        load_samples("MBZUAI/medix-rl-data")


GOOD_ROW = b'{"id": "1", "problem": "q", "solution": "a", "response": "a"}\n'


@pytest.mark.parametrize("name,content,message", [
    ("rows.jsonl", GOOD_ROW + b'{"id": "2", "problem": "caf\xe9", "solution": "a"}\n',
     "rows.jsonl, row 2: not UTF-8 text (byte 0xe9 at column 28)"),
    ("rows.json", b'[{"id": "1",\n "problem": "\xff"}]', "rows.json, line 2: not UTF-8 text (byte 0xff"),
    ("rows.json", b'[{"id": "1",\n "problem": }]', "rows.json, line 2: not valid JSON"),
])
def test_data_files_name_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MedixError, match=re.escape(message)):
        load_samples(path)


def test_json_rows_that_are_not_objects_are_named(tmp_path):
    from medix.data.datasets import read_records

    path = tmp_path / "rows.json"
    path.write_text(json.dumps(["a question", "another"]))
    with pytest.raises(MedixError, match=r"rows.json, row 1: expected a JSON object, got str"):
        list(read_records(path))
