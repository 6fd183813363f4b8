"""The submission checker against fixtures built by hand from the official layout (not by medix's writer)."""

import hashlib
import json
import zipfile

import pytest

from medix.errors import MedixError
from medix.eval.submit import paper_tasks, underscored, validate_submission


def _sizes() -> dict[str, int]:
    """Items per paper task in a complete submission: the test split where known, else 2."""
    from medix.eval.registry import registry

    return {task: registry()[task].test_items or 2 for task in paper_tasks()}


def _fixture(tmp_path, records=None, u="MediX_R1_8B", name=None, score_lines=None):
    """results/<md5("<U>_submission")[:8]>_<U>_submission.zip holding <U>/<U>.jsonl, _eval.jsonl, _score.txt.
    Every verdict is 1 (a rubric 5), so each task line and the overall read 1.0000 unless `score_lines`."""
    if records is None:
        records = [{"id": f"{task}_{n}", "question": "q", "answer": "a", "response": "r", "answer_idx": None}
                   for task, size in _sizes().items() for n in range(size)]
    rubric = {"mimic_cxr_report_generation", "mimic_cxr_report_summarization"}
    evals = [{**r, "evaluation": {"score": 5 if r["id"].rsplit("_", 1)[0] in rubric else 1}} for r in records]
    tasks = dict.fromkeys(r["id"].rsplit("_", 1)[0] for r in records)
    if score_lines is None:
        score_lines = [f"{t:<36} {1:>10.4f} {100:>13.2f}" for t in tasks] + [f"{'Overall':<36} 1.0000 100.00"]
    zip_name = name or f"{hashlib.md5(f'{u}_submission'.encode()).hexdigest()[:8]}_{u}_submission.zip"
    path = tmp_path / zip_name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{u}/{u}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        zf.writestr(f"{u}/{u}_eval.jsonl", "".join(json.dumps(r) + "\n" for r in evals))
        zf.writestr(f"{u}/{u}_score.txt", "Model: MBZUAI/MediX-R1-8B\n\n" + "\n".join(score_lines) + "\n")
    return path


def test_official_names():
    assert underscored("MBZUAI/MediX-R1-8B") == "MediX_R1_8B"
    assert underscored("Qwen/Qwen3-VL-8B-Instruct") == "Qwen3_VL_8B_Instruct"
    assert len(paper_tasks()) == 17


def test_hand_built_submission_passes(tmp_path):
    path = _fixture(tmp_path)
    assert path.name == "c8d23a8f_MediX_R1_8B_submission.zip"  # the md5 rule, example from the official scripts
    counts = validate_submission(path)
    assert counts["judgments"] == sum(_sizes().values()) and len(counts["tasks"]) == 17 and not counts["incomplete"]


def test_missing_task_wrong_id_and_bad_score_are_named(tmp_path):
    records = [{"id": f"{t}_{n}", "question": "q", "answer": "a", "response": "r", "answer_idx": None}
               for t, size in _sizes().items() if t != "pubmedqa" for n in range(size)]
    (tmp_path / "a").mkdir()
    with pytest.raises(MedixError, match="incomplete for 1 paper task.*pubmedqa, and .* does not say so"):
        validate_submission(_fixture(tmp_path / "a", records))
    bad_id = [{"id": "medqa-0", "question": "q", "answer": "a", "response": "r", "answer_idx": None}]
    (tmp_path / "b").mkdir()
    with pytest.raises(MedixError, match="line 1: id 'medqa-0' is not <task>_<n>"):
        validate_submission(_fixture(tmp_path / "b", bad_id))
    (tmp_path / "c").mkdir()
    path = _fixture(tmp_path / "c")
    with zipfile.ZipFile(path) as zf:
        contents = {n: zf.read(n) for n in zf.namelist()}
    lines = contents["MediX_R1_8B/MediX_R1_8B_eval.jsonl"].decode().splitlines()
    lines[3] = lines[3].replace('"score": 1', '"score": "high"')
    contents["MediX_R1_8B/MediX_R1_8B_eval.jsonl"] = ("\n".join(lines) + "\n").encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in contents.items():
            zf.writestr(n, data)
    with pytest.raises(MedixError, match="line 4: evaluation.score 'high' is not a number"):
        validate_submission(path)
    (tmp_path / "d").mkdir()
    with pytest.raises(MedixError, match="should be named c8d23a8f_MediX_R1_8B_submission.zip"):
        validate_submission(_fixture(tmp_path / "d", name="MediX_R1_8B.zip"))
