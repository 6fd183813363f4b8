"""Task registry, question building and item counts of the real benchmark mirrors."""

import json
from pathlib import Path

import pytest

from helpers.eval_data import write_task
from medix.errors import MedixError
from medix.eval.items import TaskUnavailable, load_items, load_task
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


def test_questions_under_the_medix_protocol(tmp_path):
    write_task(tmp_path, "mmlu_anatomy", [{"question": "Q?", "choices": ["x", "y", "z"], "answer": 1}])
    write_task(tmp_path, "usmle_sa", [{"question": "U?", "options": {"A": "a", "B": None, "C": "c"},
                                       "answer_idx": "C"}])
    write_task(tmp_path, "pubmedqa", [{"pubid": 7, "QUESTION": "Does it?", "CONTEXTS": ["c1", "c2"],
                                    "final_decision": "maybe", "LONG_ANSWER": "Unclear."}])
    write_task(tmp_path, "slake_vqa", [{"qid": 1, "question": "q-en", "answer": "CT", "q_lang": "en", "image": None},
                                    {"qid": 2, "question": "q-zh", "answer": "CT", "q_lang": "zh", "image": None}])
    [mmlu] = load_items(registry()["mmlu_anatomy"], tmp_path, protocol="medix")
    assert "A. x\nB. y\nC. z" in mmlu.question and mmlu.reference == "B. y"
    [usmle] = load_items(registry()["usmle_sa"], tmp_path, protocol="medix")
    assert usmle.choices == {"A": "a", "C": "c"} and usmle.reference == "C. c"  # null dropped, letters kept
    [pub] = load_items(registry()["pubmedqa"], tmp_path, protocol="medix")
    assert "c1\nc2" in pub.question and "yes, no, maybe" in pub.question and pub.reference == "maybe. Unclear."
    assert pub.id == "7"
    slake = load_items(registry()["slake_vqa"], tmp_path, protocol="medix")
    assert [s.question for s in slake] == ["q-en"] and slake[0].meta["image_missing"] is True


def test_absent_data_is_a_skip_reason_and_a_missing_dir_an_error(tmp_path):
    with pytest.raises(TaskUnavailable, match="medqa/test.jsonl"):
        load_items(registry()["medqa"], tmp_path)
    with pytest.raises(MedixError, match="does not exist"):
        load_items(registry()["medqa"], tmp_path / "nope")


# Expected strings written from the published evaluation's rules (docs/fidelity.md), not from medix's output:
# question, blank line, "Choices:", one "A. text" line per option, no instruction; reference = option text.
PAPER_CASES = [
    ("mmlu_anatomy", {"question": "Which bone?", "choices": ["Femur", "Tibia", "Ulna", "Radius"], "answer": 2},
     "Which bone?\n\nChoices:\nA. Femur\nB. Tibia\nC. Ulna\nD. Radius", "Ulna"),
    ("medmcqa", {"id": "m1", "question": "Drug of choice?", "opa": "a1", "opb": "b1", "opc": "c1", "opd": "d1",
                 "cop": 0}, "Drug of choice?\n\nChoices:\nA. a1\nB. b1\nC. c1\nD. d1", "a1"),
    ("medqa", {"id": "test-00000", "sent1": "A 45-year-old man...", "ending0": "x", "ending1": "y", "ending2": "z",
               "ending3": "w", "label": 3}, "A 45-year-old man...\n\nChoices:\nA. x\nB. y\nC. z\nD. w", "w"),
    # USMLE-SA: a null option keeps its letter; the reference is the `answer` column
    ("usmle_sa", {"question": "U?", "options": {"A": "a", "B": None, "C": "c"}, "answer": "c", "answer_idx": "C"},
     "U?\n\nChoices:\nA. a\nC. c", "c"),
    # PubMedQA: the first context only, "Question:" block, the choices as the official YAML 1.1 parse gives
    # them (yes / no unquoted -> booleans -> "True" / "False"); reference = decision + newline + long answer
    ("pubmedqa", {"pubid": 7, "QUESTION": "Does it?", "CONTEXTS": ["c1", "c2"], "final_decision": "maybe",
                  "LONG_ANSWER": "Unclear."},
     "Contexts:\nc1\n\nQuestion:\nDoes it?\n\nChoices:\nA. True\nB. False\nC. maybe", "maybe\nUnclear."),
    ("pmc_vqa", {"question": "What is shown?", "choices": ["CT", "MRI", "X-ray"], "answer": "MRI", "image": None},
     "What is shown?\n\nChoices:\nA. CT\nB. MRI\nC. X-ray", "MRI"),
    ("pmc_vqa_hard", {"question": "What is shown?", "answer": "MRI", "image": None}, "What is shown?", "MRI"),
    ("rad_vqa", {"question": "is there a fracture?", "answer": "no", "image": None}, "is there a fracture?", "no"),
]


@pytest.mark.parametrize("task,row,question,reference", PAPER_CASES, ids=[c[0] for c in PAPER_CASES])
def test_paper_protocol_questions_and_references(tmp_path, task, row, question, reference):
    write_task(tmp_path, task, [row])
    [item] = load_items(registry()[task], tmp_path, protocol="paper")
    assert item.question == question
    assert item.reference == reference
    assert item.index == 0


def test_paper_protocol_reports_and_slake_images(tmp_path):
    write_task(tmp_path, "mimic_cxr_report_summarization", [{"report": "Lungs clear.", "summary": "Normal."}])
    [summ] = load_items(registry()["mimic_cxr_report_summarization"], tmp_path, protocol="paper")
    instruction = registry()["mimic_cxr_report_summarization"].instruction.strip()
    assert summ.question == f"{instruction}\n\nReport:\nLungs clear.:" and summ.reference == "Normal."
    write_task(tmp_path, "mimic_cxr_report_generation", [{"report": "No acute findings.", "image": None}])
    [gen] = load_items(registry()["mimic_cxr_report_generation"], tmp_path, protocol="paper")
    assert gen.reference == "No acute findings."
    # SLAKE: English rows only; the image is resolved from img_name inside the unpacked archive folder
    write_task(tmp_path, "slake_vqa", [{"qid": 1, "question": "q-en", "answer": "CT", "q_lang": "en", "image": None,
                                     "img_name": "xmlab1/source.jpg"},
                                    {"qid": 2, "question": "q-zh", "answer": "CT", "q_lang": "zh", "image": None,
                                     "img_name": "xmlab1/source.jpg"}])
    (tmp_path / "slake_vqa" / "imgs" / "xmlab1").mkdir(parents=True)
    (tmp_path / "slake_vqa" / "imgs" / "xmlab1" / "source.jpg").write_bytes(b"jpg")
    [slake] = load_items(registry()["slake_vqa"], tmp_path, protocol="paper")
    assert slake.question == "q-en" and slake.images == [str(tmp_path / "slake_vqa" / "imgs" / "xmlab1" / "source.jpg")]
    assert "image_missing" not in slake.meta


@pytest.mark.parametrize("answer,why", [(-1, "greater than or equal to 0"), (7, "outside the 2 options")])
def test_answer_index_outside_the_options_is_a_bad_row(tmp_path, answer, why):
    write_task(tmp_path, "mmlu_anatomy", [{"question": "Q?", "choices": ["x", "y"], "answer": answer},
                                       {"question": "R?", "choices": ["x", "y"], "answer": 0}])
    data = load_task(registry()["mmlu_anatomy"], tmp_path)
    assert [i.question.split("\n")[0] for i in data.items] == ["R?"]
    [bad] = data.bad_rows
    assert "mmlu_anatomy/test.jsonl, line 1" in bad and why in bad
    (tmp_path / "mmlu_anatomy" / "test.jsonl").write_text(json.dumps({"question": "Q?", "choices": ["x", "y"],
                                                                      "answer": answer}) + "\n")
    with pytest.raises(TaskUnavailable, match=r"every one of its 1 rows is bad.*test.jsonl, line 1"):
        load_items(registry()["mmlu_anatomy"], tmp_path)


def test_paper_protocol_on_the_real_mirrors(benchmarks_dir):
    """Spot checks on real rows, expected values read from the rows by the official rules."""
    rows = [json.loads(line) for line in (benchmarks_dir / "medqa" / "test.jsonl").read_text().splitlines()[:3]]
    items = load_items(registry()["medqa"], benchmarks_dir, limit=3)
    for row, item in zip(rows, items):
        options = [row[f"ending{i}"] for i in range(4)]
        listed = "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(options))
        assert item.question == f"{row['sent1']}\n\nChoices:\n{listed}".strip()
        assert item.reference == options[row["label"]]
    pub_row = json.loads((benchmarks_dir / "pubmedqa" / "test.jsonl").read_text().splitlines()[0])
    [pub] = load_items(registry()["pubmedqa"], benchmarks_dir, limit=1)
    assert pub.question.startswith(f"Contexts:\n{pub_row['CONTEXTS'][0]}\n\nQuestion:\n{pub_row['QUESTION']}")
    assert pub_row["CONTEXTS"][1] not in pub.question
    assert pub.reference == f"{pub_row['final_decision']}\n{pub_row['LONG_ANSWER']}".strip()
    usmle_rows = [json.loads(line) for line in (benchmarks_dir / "usmle_sa" / "test.jsonl").read_text().splitlines()]
    usmle = load_items(registry()["usmle_sa"], benchmarks_dir)
    assert [u.reference for u in usmle] == [r["answer"].strip() for r in usmle_rows]
    assert [u.index for u in usmle] == list(range(len(usmle_rows)))


@pytest.mark.parametrize("raw,seen", [
    ("<X_RAY> <thinking>no, it is B</thinking>\n<answer>A</answer>", "<answer>A</answer>"),
    ("<think>a</think> draft <think>b</think> final", "final"),
    ("<think>a</think> x </thinking> y", "x </thinking> y"),  # </think> first, as the official rule orders it
    ("no reasoning at all", "no reasoning at all"),
    # exact tags, as the official `'</think>' in response`: other spellings are no tag, the judge sees it all
    ("<think>a</Think> B", "<think>a</Think> B"),
    ("<think>a</ think> B", "<think>a</ think> B"),
    ("<think>a</THINKING> B", "<think>a</THINKING> B"),
])
def test_paper_judge_sees_the_response_after_the_last_think_tag(raw, seen):
    from medix.eval.protocol import paper_candidate

    assert paper_candidate(raw) == seen


def test_a_hub_image_split_is_not_decoded_and_its_images_keep_their_bytes(monkeypatch, tmp_path, benchmarks_dir):
    """A hub split's Image() column is read as stored bytes, item by item: nothing is decoded to PIL, and the
    file written for an item holds the hub's bytes (so the prompt hash equals the mirror's)."""
    import datasets

    from medix import hub

    rows = [json.loads(line) for line in (benchmarks_dir / "rad_vqa" / "test.jsonl").open()][:4]
    for row in rows:
        path = benchmarks_dir / "rad_vqa" / row["image"]
        row["image"] = {"bytes": path.read_bytes(), "path": path.name}
    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string"), "answer_type": datasets.Value("string")})
    split = datasets.Dataset.from_list([{k: r[k] for k in features} for r in rows], features=features)
    monkeypatch.setattr(hub, "load_dataset", lambda *a, **k: (split, "0" * 40))
    monkeypatch.setenv("MEDIX_CACHE", str(tmp_path))

    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded while the task loaded")

    monkeypatch.setattr(datasets.Image, "decode_example", refuse)
    items = load_items(registry()["rad_vqa"], None, limit=3)
    assert len(items) == 3
    mirror = [benchmarks_dir / "rad_vqa" / json.loads(line)["image"]
              for _, line in zip(range(3), (benchmarks_dir / "rad_vqa" / "test.jsonl").open())]
    assert [Path(i.images[0]).read_bytes() for i in items] == [p.read_bytes() for p in mirror]
    assert all("/eval_images/rad_vqa/000000000000/" in i.images[0] for i in items)
    assert {i.data_revision for i in items} == {"0" * 40}


def test_an_empty_task_file_is_named_as_empty(tmp_path):
    (tmp_path / "mmlu_anatomy").mkdir()
    (tmp_path / "mmlu_anatomy" / "test.jsonl").write_text("")
    with pytest.raises(TaskUnavailable, match="test.jsonl has no rows"):
        load_task(registry()["mmlu_anatomy"], tmp_path)
