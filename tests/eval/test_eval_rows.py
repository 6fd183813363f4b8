"""Row schemas: a field of the wrong type is a named, counted, skipped row — never an answer."""


import pytest

from helpers.eval_data import write_task
from medix.judge.config import JudgeConfig
from medix.eval.config import EvalConfig
from medix.eval.items import load_task
from medix.eval.registry import registry
from medix.eval.runner import run_eval, task_listing
from medix.testing.stub_server import JudgeStub

GOOD = {
    "medqa": {"id": "t1", "sent1": "Q?", "ending0": "a", "ending1": "b", "ending2": "c", "ending3": "d", "label": 1},
    "medmcqa": {"id": "m1", "question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 2},
    "mmlu_anatomy": {"question": "Q?", "choices": ["a", "b", "c"], "answer": 0},
    "rad_vqa": {"question": "Q?", "answer": "yes", "image": None},
    "pmc_vqa": {"question": "Q?", "choices": ["CT", "MRI"], "answer": "MRI", "image": None},
    "usmle_sa": {"question": "Q?", "options": {"A": "a", "B": "b"}, "answer": "b", "answer_idx": "B"},
    "pubmedqa": {"pubid": 1, "QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "no", "LONG_ANSWER": "L"},
}
# (task, field, bad value, what the old loader made of it): each must be skipped and named.
BAD = [
    ("medqa", "label", True, "option B"),
    ("medmcqa", "cop", "Cardiology", "option C"),
    ("rad_vqa", "answer", None, 'the reference "None"'),
    ("mmlu_anatomy", "choices", "abc", "options a / b / c"),
    ("mmlu_anatomy", "question", 12345, 'the question "12345"'),
    ("pmc_vqa", "choices", [f"o{i}" for i in range(27)], "options past Z dropped"),
    ("medqa", "label", "1", "an index read from text"),
    ("usmle_sa", "answer_idx", 2, "a letter from a number"),
    ("pubmedqa", "CONTEXTS", [], "an empty context"),
]


@pytest.mark.parametrize("task,column,value,old", BAD, ids=[f"{t}-{c}" for t, c, *_ in BAD])
def test_a_field_of_the_wrong_type_is_a_skipped_named_row(tmp_path, task, column, value, old):
    write_task(tmp_path, task, [GOOD[task], {**GOOD[task], column: value}])
    data = load_task(registry()[task], tmp_path, protocol="paper")
    assert len(data.items) == 1  # the good row only
    [bad] = data.bad_rows
    assert f"{task}/test.jsonl, line 2" in bad and f"field {column!r} = {value!r}"[:60] in bad


def test_a_missing_field_is_named_as_missing(tmp_path):
    row = dict(GOOD["medqa"])
    del row["label"]
    write_task(tmp_path, "medqa", [GOOD["medqa"], row])
    [bad] = load_task(registry()["medqa"], tmp_path).bad_rows
    assert "line 2: field 'label' = None (missing)" in bad


def test_bad_rows_are_counted_in_the_listing_and_the_scores(tmp_path):
    data = tmp_path / "data"
    write_task(data, "mmlu_anatomy", [GOOD["mmlu_anatomy"], {**GOOD["mmlu_anatomy"], "answer": True}])
    rows = {r["task"]: r for r in task_listing(str(data))}
    assert rows["mmlu_anatomy"]["items"] == 1 and rows["mmlu_anatomy"]["bad_rows"] == 1
    with JudgeStub(role="policy", policy_answer="A") as policy, JudgeStub() as judge:
        cfg = EvalConfig(model="stub-policy", backend="openai", base_url=policy.url, data_dir=str(data),
                         output_dir=str(tmp_path / "run"), tasks=["mmlu_anatomy"], max_new_tokens=8, bootstrap=0,
                         protocol="medix", judge=JudgeConfig(backend="openai", model="stub", base_urls=[judge.url],
                                                             cache_path=str(tmp_path / "c.sqlite")))
        result = run_eval(cfg)
    entry = result.scores["tasks"]["mmlu_anatomy"]
    assert entry["n"] == 1 and entry["data"]["bad_rows"] == 1
    assert "line 2: field 'answer' = True" in entry["data"]["bad_row_examples"][0]
    assert "mmlu_anatomy: 1 bad rows" in (tmp_path / "run" / "scores.md").read_text()
    assert "mmlu_anatomy: 1 bad rows" in (tmp_path / "run" / "report.html").read_text()
