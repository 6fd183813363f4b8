"""Verdict-cache keys: one batch serialises the identity once and hashes the same bytes the single-key formula
hashes (stored verdicts stay valid); the judge builds its identity once and asks the backend table once."""

from __future__ import annotations

import hashlib
import json

import pytest

from medix.judge.config import JudgeConfig
from medix.judge.cache import cache_key, cache_keys

IDENTITY = {"backend": "openai", "model": "m", "method": "chat", "template_sha256": "abc", "protocol": "binary-v1",
            "temperature": 0.0, "max_tokens": 8, "endpoints": ["http://127.0.0.1:9/v1"], "threshold": 0.4,
            "p_yes": "unavailable"}
PROMPTS = ["Is 'pneumothorax' right?", "Réponse: «oui» — 肺炎", "", 'quote " and \\ backslash\nnew line']


def documented_key(identity: dict, prompt: str) -> str:
    """The key as docs and older caches define it: sha256 of json.dumps([settings, prompt]) without the notes
    (p_yes) and the decision settings (threshold, soft)."""
    settings = {k: v for k, v in identity.items() if k not in ("p_yes", "threshold", "soft")}
    return hashlib.sha256(json.dumps([settings, prompt], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def test_batched_keys_are_the_documented_keys():
    assert cache_keys(IDENTITY, PROMPTS) == [documented_key(IDENTITY, p) for p in PROMPTS]
    assert cache_key(IDENTITY, PROMPTS[1]) == documented_key(IDENTITY, PROMPTS[1])
    other = {**IDENTITY, "model": "n"}
    assert cache_keys(other, PROMPTS[:1]) != cache_keys(IDENTITY, PROMPTS[:1])
    # re-decided, not re-asked
    assert cache_keys({**IDENTITY, "threshold": 0.9}, PROMPTS) == cache_keys(IDENTITY, PROMPTS)


def test_the_judge_builds_its_identity_and_reads_the_backend_table_once(monkeypatch, stub, tmp_path):
    from medix.judge import core
    from medix.judge.types import JudgeRequest

    calls = {"identity": 0, "table": 0}
    real_identity, real_table = core.judge_identity, core.get_backend

    def counted_identity(*args, **kwargs):
        calls["identity"] += 1
        return real_identity(*args, **kwargs)

    def counted_table(name):
        calls["table"] += 1
        return real_table(name)

    monkeypatch.setattr(core, "judge_identity", counted_identity)
    monkeypatch.setattr(core, "get_backend", counted_table)
    config = JudgeConfig(backend="openai", model="stub", base_urls=[stub.url], cache_path=str(tmp_path / "c.sqlite"),
                         timeout_s=2, backoff_s=0.01)
    with core.Judge(config) as judge:
        after = []
        for round_ in range(3):
            verdicts = judge.judge([JudgeRequest(question="q", reference="pneumonia", candidate=f"pneumonia {i}")
                                    for i in range(3 * round_, 3 * round_ + 3)])
            assert all(v.ok for v in verdicts)
            after.append(dict(calls))
        assert calls["identity"] == 1
        # the first call reads the table to build the identity and the backend; later calls never
        assert after[0]["table"] <= 3 and after[1]["table"] == after[2]["table"] == after[0]["table"]
        first = judge.identity
        first["model"] = "changed by a caller"
        assert judge.identity["model"] == "stub"  # callers get a copy


@pytest.mark.parametrize("served", [True, False])
def test_fits_needs_no_table_lookup(monkeypatch, served, tmp_path):
    from medix.judge import core

    backend = "openai" if served else "local"
    judge = core.Judge(JudgeConfig(backend=backend, model="smollm2-135m", cache_path=str(tmp_path / "c.sqlite")))
    try:
        monkeypatch.setattr(core, "get_backend", lambda name: pytest.fail("the backend table was read again"))
        assert judge.fits("short prompt")  # local: under the smallest context, no model loaded
    finally:
        judge.close()
