"""medix/files.py's rules as every command meets them: one output-path rule before any model loads (existing
files, the input, folders, read-only paths, /dev/full) (docs/reliability.md)."""


import pytest

from helpers.cli_runner import cli
from helpers.eval_data import mcq_rows, write_jsonl, write_pairs


OUTPUT_CASES = {
    # name: (argv builder, the file that must survive unchanged or None, message)
    "audit --calibrate an existing file": (
        lambda p, t: ["judge", "audit", "--pairs", str(p), "--calibrate", str(t / "old.yaml")], "old.yaml",
        "already exists; pass --overwrite"),
    "audit --calibrate = --pairs": (
        lambda p, t: ["judge", "audit", "--pairs", str(p), "--calibrate", str(p)], "pairs.jsonl", "is the input file"),
    "audit --json = --pairs": (
        lambda p, t: ["judge", "audit", "--pairs", str(p), "--json", str(p)], "pairs.jsonl", "is the input file"),
    "audit --calibrate a folder": (
        lambda p, t: ["judge", "audit", "--pairs", str(p), "--calibrate", str(t)], None, "is a directory"),
    "contamination -o = --train": (
        lambda p, t: ["eval", "contamination", "--train", str(t / "train.jsonl"), "--data-dir", str(t / "data"),
                      "-o", str(t / "train.jsonl")], "train.jsonl", "is the input file"),
    "contamination -o an existing file": (
        lambda p, t: ["eval", "contamination", "--train", str(t / "train.jsonl"), "--data-dir", str(t / "data"),
                      "-o", str(t / "old.yaml")], "old.yaml", "already exists; pass --overwrite"),
    "contamination -o a folder": (
        lambda p, t: ["eval", "contamination", "--train", str(t / "train.jsonl"), "--data-dir", str(t / "data"),
                      "-o", str(t / "data")], None, "is a directory"),
    "reward score -o /dev/full --overwrite": (
        lambda p, t: ["reward", "score", "-i", str(t / "rows.jsonl"), "-o", "/dev/full", "--overwrite"], None,
        "not a regular file"),
    "eval submit -o a file": (
        lambda p, t: ["eval", "submit", str(t / "run"), "-o", str(t / "old.yaml")], "old.yaml",
        "is a file; give a folder"),
}


def _no_judge(monkeypatch) -> None:
    """Building a Judge fails the case. The modules that import `Judge` by name are imported first, so none of
    them keeps the stand-in after this test (a later test would meet it)."""
    import medix.cli.judge
    import medix.eval.runner
    import medix.judge
    import medix.rewards.components  # noqa: F401

    monkeypatch.setattr(medix.judge, "Judge", lambda *a, **k: pytest.fail("the judge was built before the check"))


@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_outputs_are_never_clobbered_and_bad_paths_are_named(tmp_path, monkeypatch, case):
    _no_judge(monkeypatch)
    pairs = write_pairs(tmp_path)
    (tmp_path / "old.yaml").write_text("mine\n")
    write_jsonl(tmp_path / "train.jsonl", [{"problem": "a b c", "solution": "<X_RAY> d"}])
    write_jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", mcq_rows(2))
    write_jsonl(tmp_path / "rows.jsonl", [{"response": "<answer>x</answer>", "solution": "x"}])
    build, keep, message = OUTPUT_CASES[case]
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    code, output, error = cli(*build(pairs, tmp_path))
    assert code != 0 and error is not None and message in str(error), (code, output, error)
    if keep:
        assert (tmp_path / keep).read_bytes() == before[tmp_path / keep]


def test_read_only_json_output_of_an_audit_is_refused_before_the_judge(tmp_path, monkeypatch):
    import medix.files

    _no_judge(monkeypatch)

    monkeypatch.setattr(medix.files.tempfile, "TemporaryFile",
                        lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    code, _, error = cli("judge", "audit", "--pairs", str(write_pairs(tmp_path)), "--json",
                         str(tmp_path / "ro" / "a.json"))
    assert code != 0 and "is not writable (Permission denied)" in str(error)
