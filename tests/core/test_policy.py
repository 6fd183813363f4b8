"""`medix.policy`: `medix infer` (`Assistant`) and eval's generate phase ask the same policy classes — a server on
loopback and a tiny local model — and the same question reaches the model the same way from both.

    python -m pytest -q tests/core/test_policy.py
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from helpers.servers import reply_server
import medix
from medix import policy
from medix.eval.config import EvalConfig
from medix.eval.generate import run_generate
from medix.eval.records import EvalItem, JsonlStore

ANSWER = "<X_RAY> <thinking> Opacity. </thinking> <answer> Pneumonia </answer>"


@pytest.fixture
def asked(monkeypatch) -> list[str]:
    """The policy class of every batch asked locally and every request sent to a server, in order."""
    calls = []
    for cls, method in ((policy.LocalPolicy, "generate"), (policy.ServedPolicy, "ask")):
        original = getattr(cls, method)

        def spy(self, *args, _original=original, **kwargs):
            calls.append(type(self).__name__)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, spy)
    return calls


def eval_generate(tmp_path, item: EvalItem, **settings) -> dict:
    """One item through eval's generate phase; its record."""
    store = JsonlStore(tmp_path / "generations.jsonl")
    cfg = EvalConfig(tasks=["vqa_rad"], output_dir=str(tmp_path / "run"), protocol="medix", **settings)
    assert run_generate(cfg, [item], store) == 0
    [record] = store.read()
    return record


def test_infer_and_eval_send_one_request_layout_through_the_served_policy(tmp_path, asked):
    bodies = []
    scan = tmp_path / "scan.png"
    Image.new("RGB", (3000, 2000), (90, 90, 90)).save(scan)
    with reply_server(lambda body: bodies.append(body) or ANSWER) as server:
        reply = medix.Assistant("MediX-R1-8B", server=server.url, max_new_tokens=64).ask("Diagnosis?", image=scan)
        record = eval_generate(tmp_path, EvalItem(id="1", task="vqa_rad", question="Diagnosis?", reference="x",
                                                  images=[str(scan)]),
                               model="MediX-R1-8B", backend="openai", base_urls=[server.url], max_new_tokens=64)
    assert asked == ["ServedPolicy", "ServedPolicy"]
    assert reply.raw == record["raw"] == ANSWER and reply.answer == record["answer"] == "Pneumonia"
    infer_body, eval_body = bodies
    assert infer_body == eval_body, "infer and eval lay out the same question differently"
    image_part, text_part = infer_body["messages"][0]["content"]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,") and "Diagnosis?" in text_part["text"]


def test_infer_and_eval_ask_the_same_local_policy_for_the_same_text(tmp_path, asked):
    from medix.testing.tiny import tiny_text_lm

    model, tokenizer = tiny_text_lm()
    folder = tmp_path / "text-lm"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    question = "What is aspirin used for?"
    reply = medix.Assistant(str(folder), max_new_tokens=8).ask(question)
    record = eval_generate(tmp_path, EvalItem(id="1", task="vqa_rad", question=question, reference="x"),
                           model=str(folder), backend="local", max_new_tokens=8)
    assert asked == ["LocalPolicy", "LocalPolicy"]
    assert reply.raw and reply.raw == record["raw"], json.dumps([reply.raw, record["raw"]])


def test_a_failed_request_is_an_answer_not_an_exception(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    served = policy.ServedPolicy("m", "http://127.0.0.1:9/v1", max_new_tokens=4)
    [answer] = served.generate([policy.Request("q", images=(str(bad),))])
    assert not answer.ok and "notes.png is not a readable image" in answer.error and answer.attempts == 0
    assert policy.Request("q", ("a.png",), system="s").size() == ("sq", 1)
