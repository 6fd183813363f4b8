"""Task registry, question building and item counts of the real benchmark mirrors."""

import json

import pytest

from medix.errors import MedixError
from medix.eval.items import TaskUnavailable, load_items
from medix.eval.registry import registry, select_tasks

OFFICIAL_COUNTS = [
    ("mmlu_anatomy", 135), ("mmlu_clinical_knowledge", 265), ("mmlu_college_biology", 144),
    ("mmlu_college_medicine", 173), ("mmlu_medical_genetics", 100), ("mmlu_professional_medicine", 272),
    ("medmcqa", 4183), ("medqa", 1273), ("pubmedqa", 500), ("rad_vqa", 451), ("path_vqa", 6719),
    ("slake_vqa", 1061),
]


@pytest.mark.parametrize("task,count", OFFICIAL_COUNTS)
def test_item_counts_equal_the_official_splits(benchmarks_dir, task, count):
    items = load_items(registry()[task], benchmarks_dir)
    assert len(items) == count
    assert len({i.id for i in items}) == count  # ids unique: resume keys never collide


def test_all_seventeen_paper_tasks_plus_the_stand_in():
    names = set(registry())
    assert len(names) == 18 and "iu_xray_summarization" in names
    assert len(select_tasks("all")) == 18
    assert {t.group for t in select_tasks("vlm")} == {"vlm"} and len(select_tasks("vlm")) == 6
    assert [t.name for t in select_tasks("medqa,rad_vqa")] == ["medqa", "rad_vqa"]


@pytest.mark.parametrize("bad,hint", [("mmlu_anatomi", "mmlu_anatomy"), ("radvqa", "rad_vqa"), ("vlms", "vlm")])
def test_misspelt_task_gets_a_suggestion(bad, hint):
    with pytest.raises(MedixError, match=f"did you mean '{hint}'"):
        select_tasks([bad])


def _mirror(tmp_path, task, rows):
    folder = tmp_path / task
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_questions_are_built_as_the_paper_does(tmp_path):
    _mirror(tmp_path, "mmlu_anatomy", [{"question": "Q?", "choices": ["x", "y", "z"], "answer": 1}])
    _mirror(tmp_path, "usmle_sa", [{"question": "U?", "options": {"A": "a", "B": None, "C": "c"}, "answer_idx": "C"}])
    _mirror(tmp_path, "pubmedqa", [{"pubid": 7, "QUESTION": "Does it?", "CONTEXTS": ["c1", "c2"],
                                    "final_decision": "maybe", "LONG_ANSWER": "Unclear."}])
    _mirror(tmp_path, "slake_vqa", [{"qid": 1, "question": "q-en", "answer": "CT", "q_lang": "en", "image": None},
                                    {"qid": 2, "question": "q-zh", "answer": "CT", "q_lang": "zh", "image": None}])
    [mmlu] = load_items(registry()["mmlu_anatomy"], tmp_path)
    assert "A. x\nB. y\nC. z" in mmlu.question and mmlu.reference == "B. y"
    [usmle] = load_items(registry()["usmle_sa"], tmp_path)
    assert usmle.choices == {"A": "a", "C": "c"} and usmle.reference == "C. c"  # null dropped, letters kept
    [pub] = load_items(registry()["pubmedqa"], tmp_path)
    assert "c1\nc2" in pub.question and "yes, no, maybe" in pub.question and pub.reference == "maybe. Unclear."
    assert pub.id == "7"
    slake = load_items(registry()["slake_vqa"], tmp_path)
    assert [s.question for s in slake] == ["q-en"] and slake[0].meta["image_missing"] is True


def test_absent_data_is_a_skip_reason_and_a_missing_dir_an_error(tmp_path):
    with pytest.raises(TaskUnavailable, match="medqa/test.jsonl"):
        load_items(registry()["medqa"], tmp_path)
    with pytest.raises(MedixError, match="does not exist"):
        load_items(registry()["medqa"], tmp_path / "nope")
