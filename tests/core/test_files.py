"""medix/files.py's rules as every command meets them: one output-path rule before any model loads (existing
files, the input, folders, read-only paths, /dev/full), the output-folder lock, server URLs checked and named
without their credentials, secrets redacted (docs/reliability.md)."""

import json
import os

import pytest

from helpers import PASSWORD, SECRET
from helpers.cli_runner import cli
from helpers.eval_data import mcq_rows, stub_eval, stub_judge, write_jsonl, write_pairs
from medix.errors import MedixError
from medix.eval.runner import run_eval


@pytest.mark.parametrize("text", [
    f"Authorization: Bearer {SECRET}", f"key {SECRET} rejected", "token=Bearer abcdefgh12345678 end",
])
def test_redact_shapes_of_keys(text):
    from medix.chat_client import redact

    out = redact(text, ("my-own-key",))
    assert "[redacted]" in out and SECRET not in out and "abcdefgh12345678" not in out
    assert redact("the configured my-own-key leaked", ("my-own-key",)) == "the configured [redacted] leaked"


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
        lambda p, t: ["eval", "submit", str(t / "run"), "-o", str(t / "old.yaml")], "old.yaml", "is a file; give a folder"),
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


def test_a_second_run_on_a_held_output_folder_names_the_holder(tmp_path, policy, stub):
    from medix.files import hold_folder

    write_jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", mcq_rows(2))
    with hold_folder(tmp_path / "run", "medix eval run --model other"):
        with pytest.raises(MedixError, match=rf"in use by pid {os.getpid()} .*medix eval run --model other"):
            run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32)))
    assert policy.counts["requests"] == 0
    run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32)))  # released: the same command runs
    assert policy.counts["requests"] == 2


@pytest.mark.parametrize("given", [f"medix:{PASSWORD}@127.0.0.1:8000/v1", "127.0.0.1:8000/v1",
                                   "http://127.0.0.1:99999/v1", "ftp://127.0.0.1/v1"])
def test_a_server_url_that_is_not_http_with_a_host_is_refused_without_its_password(given, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"reference": "a", "candidate": "a", "label": True}) + "\n")
    code, output, error = cli("judge", "audit", "--pairs", str(pairs), "--judge-backend", "openai",
                              "--judge-model", "m", "--judge-url", given)
    said = str(error) if error else output
    assert code != 0 and "URL" in said and PASSWORD not in said and PASSWORD not in output


def test_infer_and_rollout_server_urls_are_checked_the_same_way():
    from medix.train.config import load_train_config

    code, output, error = cli("infer", "--question", "q?", "--server", f"medix:{PASSWORD}@127.0.0.1:8000/v1")
    assert code != 0 and error is not None and "--server:" in str(error) and PASSWORD not in str(error)
    with pytest.raises(MedixError, match="rollout.vllm_server_base_url: .*not an http"):
        load_train_config(None, ["data.train=x.jsonl", "rollout.vllm_server_base_url=localhost:8000"])
