"""medix/claims.py: one run per output folder, the second names the holder (docs/reliability.md)."""

import os

import pytest

from helpers.eval_data import mcq_rows, stub_eval, stub_judge, write_jsonl
from medix.errors import MedixError
from medix.eval.runner import run_eval


def test_a_second_run_on_a_held_output_folder_names_the_holder(tmp_path, policy, stub):
    from medix.claims import hold_folder

    write_jsonl(tmp_path / "data" / "mmlu_anatomy" / "test.jsonl", mcq_rows(2))
    with hold_folder(tmp_path / "run", "medix eval run --model other"):
        with pytest.raises(MedixError, match=rf"in use by pid {os.getpid()} .*medix eval run --model other"):
            run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32)))
    assert policy.counts["requests"] == 0
    run_eval(stub_eval(tmp_path, policy.url, stub_judge(stub.url, max_tokens=32)))  # released: the same command runs
    assert policy.counts["requests"] == 2
