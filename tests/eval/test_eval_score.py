"""Scoring from fixed verdicts, verdict parsing, and the crash-safe JSONL store."""

import json

import pytest

from helpers.eval_data import mcq_rows, stub_eval, stub_judge, write_jsonl
from medix.errors import MedixError
from medix.eval.registry import registry
from medix.eval.runner import run_eval
from medix.eval.records import JsonlStore
from medix.eval.score import score_tasks
from medix.judge.parse import combine_rounds as combine, parse_rubric


def _j(i, normalized, score=None, error=None, note=None, status="scored"):
    return {"id": str(i), "normalized": normalized, "score": score if score is not None else normalized,
            "error": error, "note": note, "parse_failures": 0, "status": status}


def test_scores_equal_the_hand_computed_table():
    specs = [registry()[n] for n in ("medqa", "iu_xray_summarization", "rad_vqa")]
    judgments = {
        "medqa": [_j(0, 1.0), _j(1, 0.0), _j(2, 1.0), _j(3, 1.0)],                       # 3/4 = 0.75
        "iu_xray_summarization": [_j(0, 1.0, 5.0), _j(1, 0.6, 3.0),                     # (5+3)/2/5 = 0.8
                                  {**_j(2, None, status="judge_failed"), "score": None, "error": "round 1: timeout"}],
        "rad_vqa": [_j(0, 1.0), _j(1, 0.0),                                              # 0.5
                    {**_j(2, None, status="no_response"), "score": None, "error": "no response: 500"}],
    }
    meta = {"rad_vqa": {"0": {"answer_type": "CLOSED"}, "1": {"answer_type": "OPEN"}}}
    s = score_tasks(specs, judgments, meta, resamples=200, seed=0, protocol="medix")
    assert {t: v["score"] for t, v in s["tasks"].items()} == {"medqa": 0.75, "iu_xray_summarization": 0.8,
                                                             "rad_vqa": 0.5}
    assert s["tasks"]["medqa"]["n"] == 4 and s["tasks"]["iu_xray_summarization"]["n"] == 2
    assert s["tasks"]["iu_xray_summarization"]["judge_failures"] == 1
    assert s["tasks"]["rad_vqa"]["generation_failures"] == 1
    assert s["tasks"]["rad_vqa"]["breakdowns"]["answer_type"] == {"CLOSED": {"score": 1.0, "n": 1},
                                                                 "OPEN": {"score": 0.0, "n": 1}}
    # the IU X-ray stand-in is scored and listed, but the means are over the paper's tasks only
    assert s["llm"] == pytest.approx(0.75) and s["vlm"] == 0.5 and s["overall"] == pytest.approx(0.625)
    assert s["failures_counted_as"] == "excluded"
    low, high = s["tasks"]["medqa"]["ci"]
    assert 0 <= low <= 0.75 <= high <= 1
    assert score_tasks(specs, judgments, meta, resamples=200, seed=0, protocol="medix") == s  # deterministic
    # paper protocol: every item is in the denominator; a failed one counts 0
    p = score_tasks(specs, judgments, meta, resamples=0, protocol="paper")
    assert {t: v["score"] for t, v in p["tasks"].items()} == pytest.approx(
        {"medqa": 0.75, "iu_xray_summarization": 1.6 / 3, "rad_vqa": 1 / 3})
    assert p["tasks"]["rad_vqa"]["n"] == 3 and p["overall"] == pytest.approx((0.75 + 1 / 3) / 2)
    assert p["protocol"] == "paper" and p["failures_counted_as"].startswith("0")


@pytest.mark.parametrize("text,expected", [
    ('{"score": 4}', 4.0), ('Sure. {"score": 2}', 2.0), ("Score: 3/5", None), ("**5**", None),
    ('{"score": 9}', None), ("no idea", None), ("", None),
])
def test_rubric_parsing_reads_the_json_score(text, expected):
    assert parse_rubric(text) == expected


@pytest.mark.parametrize("kind,rounds,expected", [
    ("binary", [1, 1, 0], 1.0), ("binary", [0, 1, 0], 0.0), ("binary", [1, 0], 0.0), ("rubric", [4, 5, 3], 4.0),
])
def test_majority_and_mean(kind, rounds, expected):
    assert combine(kind, rounds) == expected


def test_store_repairs_a_torn_line_and_never_duplicates(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"id": "a"}) + "\n" + json.dumps({"id": "b"}) + "\n" + '{"id": "c", "ra')
    store = JsonlStore(path)
    assert store.ids() == {"a", "b"}
    store.append([{"id": "c"}, {"id": "a", "dup": True}])
    assert [r["id"] for r in store.read()] == ["a", "b", "c"] and "dup" not in store.read()[0]
    assert store.drop(lambda r: r["id"] == "b") == 1 and store.ids() == {"a", "c"}


def test_bootstrap_interval_is_95_percent_wide():
    """400 items at 50%: a 95% interval spans ±1.96 standard errors, 2 × 1.96 × √(0.25 / 400) ≈ 0.098 (a 90%
    interval, the 5th to 95th percentile, would span 0.082)."""
    import numpy as np

    from medix.stats import bootstrap_means, interval

    values = np.array([1.0, 0.0] * 200)
    low, high = interval(bootstrap_means(values, 20000, np.random.default_rng(0)))
    assert high - low == pytest.approx(2 * 1.96 * (0.25 / 400) ** 0.5, abs=0.006)
    assert low < 0.5 < high


@pytest.mark.parametrize("bad_line", [b"{not json\n", b'{"task": "t"}\n', b'{"id": "\xfe"}\n'])
def test_records_file_with_a_damaged_middle_line(tmp_path, bad_line):
    path = tmp_path / "generations" / "t.jsonl"
    path.parent.mkdir()
    path.write_bytes(b'{"id": "a"}\n' + bad_line + b'{"id": "c"}\n')
    with pytest.raises(MedixError, match=r"t.jsonl, row 2: .*delete that line"):
        JsonlStore(path).read()


EDITS = {
    "normalized 5 in a binary task": (lambda r: {**r, "score": 5.0, "normalized": 5.0}, "field 'normalized'"),
    "normalized as text": (lambda r: {**r, "normalized": "yes"}, "field 'normalized': Input should be a valid number"),
    "score and normalized disagree": (lambda r: {**r, "score": 0.0, "normalized": 1.0},
                                      "field 'record': Value error, normalized 1.0 does not match score 0.0"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_an_edited_judgment_is_named_never_scored(tmp_path, policy, stub, case):
    write_jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", mcq_rows(3))
    run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32)))
    (file,) = (tmp_path / "run" / "judgments").rglob("mmlu_anatomy.jsonl")
    records = [json.loads(x) for x in file.read_text().splitlines()]
    edit, message = EDITS[case]
    records[1] = edit(records[1])
    write_jsonl(file, records)
    (tmp_path / "run" / "scores.json").unlink()
    with pytest.raises(MedixError, match=rf"mmlu_anatomy.jsonl, row 2, {message}"):
        run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32), phases=["score"]))
    assert not (tmp_path / "run" / "scores.json").exists()


def test_a_judgment_without_an_error_key_is_read_with_its_default(tmp_path, policy, stub):
    write_jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", mcq_rows(3))
    run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32)))
    (file,) = (tmp_path / "run" / "judgments").rglob("mmlu_anatomy.jsonl")
    write_jsonl(file, [{k: v for k, v in json.loads(x).items() if k != "error"} for x in file.read_text().splitlines()])
    result = run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32), phases=["score"]))
    assert result.scores["tasks"]["mmlu_anatomy"]["n"] == 3


@pytest.mark.parametrize("change", ["rows deleted from the data", "a smaller --limit"])
def test_only_the_current_items_are_scored(tmp_path, policy, stub, change):
    write_jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", mcq_rows(4))
    run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32)))
    extra = {}
    if change == "a smaller --limit":
        extra["limit"] = 3
    else:
        write_jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", mcq_rows(3))
    result = run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32), **extra))
    assert result.scores["tasks"]["mmlu_anatomy"]["n"] == 3  # not 4 from 3 rows
