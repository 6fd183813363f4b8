"""medix/safe_text.py's rules as every command meets them: server URLs checked and named without their
credentials, secrets redacted (docs/reliability.md)."""

import json

import pytest

from helpers import PASSWORD, SECRET
from helpers.cli_runner import cli
from medix.errors import MedixError


@pytest.mark.parametrize("text", [
    f"Authorization: Bearer {SECRET}", f"key {SECRET} rejected", "token=Bearer abcdefgh12345678 end",
])
def test_redact_shapes_of_keys(text):
    from medix.chat_client import redact

    out = redact(text, ("my-own-key",))
    assert "[redacted]" in out and SECRET not in out and "abcdefgh12345678" not in out
    assert redact("the configured my-own-key leaked", ("my-own-key",)) == "the configured [redacted] leaked"


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
