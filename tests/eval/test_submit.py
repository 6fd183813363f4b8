"""The submission checker against fixtures built by hand from the official layout (not by medix's writer)."""

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from helpers.cli_runner import cli
from helpers.eval_data import mcq_rows, stub_eval, stub_judge, write_jsonl
from medix.errors import MedixError
from medix.eval.runner import run_eval
from medix.eval.submit import paper_tasks, underscored, validate_submission
from medix.testing.stub_server import JudgeStub


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


def _tamper(records: list[dict], evals: list[dict], case: str) -> tuple[list[dict], list[dict], list[str] | None]:
    """The submission after `case`; the score lines when the case rewrites them (None = the honest ones)."""
    first = next(i for i, r in enumerate(evals) if r["id"].startswith("medqa_"))
    if case == "a binary score of 5":
        evals[first] = {**evals[first], "evaluation": {"score": 5}}
    elif case == "score.txt claims 100%":
        evals[first] = {**evals[first], "evaluation": {"score": 0}}  # the honest table would say medqa < 1
    elif case == "a duplicate id":
        records.append(records[first])
        evals.append(evals[first])
    elif case == "an item removed":
        del records[first], evals[first]
    elif case == "responses differ between files":
        evals[first] = {**evals[first], "response": "something else"}
    elif case == "a null response":
        records[first] = {**records[first], "response": None}
        evals[first] = {**evals[first], "response": None}
    elif case == "2 items per task":
        keep = lambda r: int(r["id"].rsplit("_", 1)[1]) < 2  # noqa: E731
        records, evals = [r for r in records if keep(r)], [r for r in evals if keep(r)]
    return records, evals, None


TAMPERED = {
    "a binary score of 5": "outside the task's scale",
    "score.txt claims 100%": "claims medqa 1.0000; the records give 0.9992",
    "a duplicate id": "appears twice",
    "an item removed": "incomplete for 1 paper task.*medqa",
    "responses differ between files": "response differ between",
    "a null response": "not text",
    "2 items per task": "incomplete for 12 paper task",
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_submission_check_fails_on_tampering(tmp_path, case):
    from medix.eval.registry import registry
    from medix.eval.submit import zip_name

    sizes = {t: getattr(registry()[t], "test_items", None) or 2 for t in paper_tasks()}  # whole test splits
    records = [{"id": f"{t}_{n}", "question": "q", "answer": "a", "response": "r", "answer_idx": None}
               for t, size in sizes.items() for n in range(size)]
    rubric = {"mimic_cxr_report_generation", "mimic_cxr_report_summarization"}
    evals = [{**r, "evaluation": {"score": 5 if r["id"].rsplit("_", 1)[0] in rubric else 1}} for r in records]
    records, evals, _ = _tamper(records, evals, case)
    tasks = dict.fromkeys(r["id"].rsplit("_", 1)[0] for r in records)
    lines = [f"{t:<36} {1:>10.4f} {100:>13.2f}" for t in tasks] + [f"{'Overall':<36} {1:>10.4f} {100:>13.2f}"]
    path = tmp_path / zip_name("M")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("M/M.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        zf.writestr("M/M_eval.jsonl", "".join(json.dumps(r) + "\n" for r in evals))
        zf.writestr("M/M_score.txt", "Model: M\n\n" + "\n".join(lines) + "\n")
    with pytest.raises(MedixError, match=TAMPERED[case]):
        validate_submission(path)


def test_a_limited_run_is_not_a_complete_submission(tmp_path, policy, stub):
    from medix.eval.submit import build_submission

    write_jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", mcq_rows(2))
    run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32)))
    with pytest.raises(MedixError, match=r"mmlu_anatomy \(2 of 135 items\)"):
        build_submission(tmp_path / "run")
    counts = validate_submission(build_submission(tmp_path / "run", allow_incomplete=True))
    assert "mmlu_anatomy" in counts["incomplete"]


def _scored_run(tmp_path: Path, name: str) -> Path:
    from medix.judge.config import JudgeConfig
    from medix.eval.config import EvalConfig

    data = tmp_path / "data" / "mmlu_anatomy" / "test.jsonl"
    if not data.is_file():
        data.parent.mkdir(parents=True)
        data.write_text(json.dumps({"question": "q?", "choices": ["x", "y"], "answer": 0}) + "\n")
    with JudgeStub(role="policy", policy_answer="A") as policy, JudgeStub() as judge:
        run_eval(EvalConfig(model="org/same-model", backend="openai", base_url=policy.url, tasks=["mmlu_anatomy"],
                            data_dir=str(tmp_path / "data"), output_dir=str(tmp_path / name), bootstrap=0,
                            judge=JudgeConfig(backend="openai", model="stub", base_urls=[judge.url], cache=False)))
    return tmp_path / name


def test_a_second_submission_of_the_same_model_is_refused_and_stray_files_stay_out(tmp_path):
    from medix.eval.submit import build_submission

    run_a, run_b = _scored_run(tmp_path, "a"), _scored_run(tmp_path, "b")
    subs = tmp_path / "subs"
    first = build_submission(run_a, subs, allow_incomplete=True)
    kept = first.read_bytes()
    (subs / "results" / "same_model" / "notes.txt").write_text("my own notes")
    with pytest.raises(MedixError, match="already there.*--overwrite"):
        build_submission(run_b, subs, allow_incomplete=True)
    assert first.read_bytes() == kept
    again = build_submission(run_b, subs, allow_incomplete=True, overwrite=True)
    with zipfile.ZipFile(again) as zf:
        assert sorted(zf.namelist()) == ["same_model/same_model.jsonl", "same_model/same_model_eval.jsonl",
                                         "same_model/same_model_score.txt"]


def _rebuilt(zip_path: Path, tmp_path: Path, change) -> Path:
    """A copy of `zip_path` (same name, another folder) whose members `change(members)` rewrites:
    members is a list of (ZipInfo, bytes)."""
    with zipfile.ZipFile(zip_path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    target = tmp_path / "tampered" / zip_path.name
    target.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(target, "w") as zf, _quiet():
        for info, data in change(members):
            zf.writestr(info, data)
    return target


def _quiet():
    import contextlib
    import warnings

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")  # zipfile warns on a duplicate name, which is the point of one case
    return stack


def _member(name: str, data: bytes, mode: int | None = None) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o100644 if mode is None else mode) << 16
    return info, data


def _twice(text: bytes, task: bytes) -> bytes:
    """The score file with the task's line repeated (a later copy that claims another score)."""
    line = next(x for x in text.splitlines(True) if x.startswith(task))
    return text.replace(line, line + line.replace(b"0.0000", b"1.0000").replace(b"1.0000", b"0.0000", 0))


def _u(members) -> str:
    return members[0][0].filename.split("/")[0]


MEMBER_CASES = {
    "a path outside the folder": (lambda m: m + [_member(f"{_u(m)}/../../evil.sh", b"rm -rf ~")], "unexpected member"),
    "a file at the root": (lambda m: m + [_member("readme.txt", b"hi")], "unexpected member 'readme.txt'"),
    "a symlink to /etc/passwd": (lambda m: [(i, d) for i, d in m if not i.filename.endswith("_score.txt")] + [
        _member(next(i.filename for i, _ in m if i.filename.endswith("_score.txt")), b"/etc/passwd", 0o120777)],
        "not a regular file"),
    "a tampered first copy of a member": (lambda m: [_member(m[0][0].filename,
                                                             m[0][1].replace(b'"score": 1', b'"score": 0')
                                                             .replace(b'"score": 0', b'"score": 1'))] + m,
                                          "appears twice"),
    "a score file with two lines for one task": (lambda m: [(i, _twice(d, b"mmlu_anatomy")
                                                             if i.filename.endswith("_score.txt") else d)
                                                            for i, d in m], "two lines for mmlu_anatomy"),
    "a member that is not UTF-8": (lambda m: [(i, d + b"\xff\xfe" if i.filename.endswith("_eval.jsonl") else d)
                                              for i, d in m], "not UTF-8"),
}


@pytest.mark.parametrize("case", list(MEMBER_CASES))
def test_submission_check_reads_every_member_and_refuses_anything_else(tmp_path, case):
    from medix.eval.submit import build_submission

    good = build_submission(_scored_run(tmp_path, "run"), allow_incomplete=True)
    validate_submission(good)
    change, message = MEMBER_CASES[case]
    code, output, error = cli("eval", "submit", "--check", str(_rebuilt(good, tmp_path, change)))
    assert code != 0 and error is not None and message in str(error), output


def test_a_corrupt_member_is_named_not_a_traceback(tmp_path):
    from medix.eval.submit import build_submission

    good = build_submission(_scored_run(tmp_path, "run"), allow_incomplete=True)
    target = _rebuilt(good, tmp_path, lambda m: m)  # stored, uncompressed: a byte of data is easy to flip
    with zipfile.ZipFile(target) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("_eval.jsonl"))
    raw = bytearray(target.read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF
    target.write_bytes(bytes(raw))
    code, output, error = cli("eval", "submit", "--check", str(target))
    assert code != 0 and error is not None and "cannot be read" in str(error)


def test_an_encrypted_member_is_named(tmp_path):
    """The encryption bit set in the member's central-directory entry (zipfile cannot write encrypted members)."""
    import struct

    from medix.eval.submit import build_submission

    good = build_submission(_scored_run(tmp_path, "run"), allow_incomplete=True)
    target = _rebuilt(good, tmp_path, lambda m: m)
    raw = bytearray(target.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at != -1:  # every central-directory entry: flag bits at +8, name length at +28, name at +46
        length = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46:at + 46 + length].endswith(b"_eval.jsonl"):
            raw[at + 8] |= 0x1
        at = raw.find(b"PK\x01\x02", at + 46)
    target.write_bytes(bytes(raw))
    code, output, error = cli("eval", "submit", "--check", str(target))
    assert code != 0 and error is not None and "is encrypted" in str(error)
