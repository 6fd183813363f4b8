"""`medix.Assistant`, `medix infer` and the demo's handlers, on the embedded model and a loopback server.

    python -m pytest -q tests/core/test_infer.py
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image
from starlette.responses import JSONResponse

from helpers import PASSWORD
from helpers.cli_runner import cli, medix as run_medix
import medix
from medix.errors import MedixError
from medix.infer import MAX_IMAGE_SIDE, load_image, zoo_entry
from medix.testing.stub_server import free_port
from medix.web.app import EXAMPLE_IMAGE, DemoSession, open_results, preview
from medix.web.results import published_rows, score_rows

TOKENS = 16


@pytest.fixture(scope="module")
def assistant():
    return medix.Assistant(max_new_tokens=TOKENS)


def test_zoo_maps_names_to_hub_ids_and_thinking_tag():
    for size in ("2B", "8B", "30B"):
        entry = zoo_entry(f"MediX-R1-{size}")
        assert entry.hub_id == f"MBZUAI/MediX-R1-{size}" and entry.think_tag == "thinking" and entry.vision
    assert zoo_entry("mbzuai/medix-r1-8b").hub_id == "MBZUAI/MediX-R1-8B"
    assert zoo_entry("smollm2-135m").vision is False
    assert medix.Assistant("MediX-R1-2B").think_tag == "thinking"  # constructing loads nothing


def test_ask_embedded_default_text_only_notes_ignored_image(assistant):
    reply = assistant.ask("What does a widened mediastinum on a chest X-ray suggest?", image=EXAMPLE_IMAGE)
    assert reply.raw.strip()
    assert set(reply.to_dict()) == {"modality", "reasoning", "answer", "raw"}
    assert any("image was ignored" in n for n in reply.notes)


@pytest.mark.parametrize("question", ["", "   \n"])
def test_empty_question_is_a_clear_error(assistant, question):
    with pytest.raises(MedixError, match="question is empty"):
        assistant.ask(question)


def test_non_image_upload_is_a_clear_error(tmp_path):
    bad = tmp_path / "report.pdf"
    bad.write_bytes(b"%PDF-1.4 not an image")
    with pytest.raises(MedixError, match="report.pdf is not a readable image"):
        load_image(bad)
    with pytest.raises(MedixError, match="image not found"):
        load_image(tmp_path / "missing.png")


def test_huge_image_is_downscaled(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (5000, 2500), 128).save(path)
    img = load_image(path)
    assert max(img.size) == MAX_IMAGE_SIDE and img.size == (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE // 2)
    assert img.mode == "RGB" and img.info["medix_original_size"] == (5000, 2500)
    shown, message = preview(str(path))
    assert "downscaled from 5000x2500" in message and max(shown.size) == MAX_IMAGE_SIDE


def test_example_image_is_small_and_valid():
    assert EXAMPLE_IMAGE.stat().st_size < 50_000
    assert load_image(EXAMPLE_IMAGE).size == (256, 256)


def test_demo_session_turns_failures_into_messages(tmp_path):
    broken = DemoSession(model=str(tmp_path / "no-such-model"), max_new_tokens=2)
    status, chip, reasoning, answer = broken.ask(None, "What is shown?")
    assert status.startswith("⚠️ cannot load") and answer == ""
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    status, *_ = DemoSession(max_new_tokens=2).ask(str(bad), "What is shown?")
    assert "not a readable image" in status
    status, *_ = DemoSession(max_new_tokens=2).ask(None, "")
    assert "question is empty" in status


@pytest.mark.slow
def test_cli_infer_json_and_errors(tmp_path):
    def run(*a):
        return run_medix("infer", *a, timeout=300)

    result = run("--question", "What is aspirin used for?", "--json", "--max-new-tokens", str(TOKENS))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"modality", "reasoning", "answer", "raw"} and out["raw"]
    result = run("--question", "What is this?", "--image", "README.md")
    assert result.returncode == 2 and "README.md is not a readable image" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def fake_vlm_server():
    """A loopback OpenAI-compatible server that answers in the MediX-R1 format and records requests."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    from medix.testing.stub_server import LoopbackServer

    seen = []

    async def completions(request):
        body = await request.json()
        seen.append(body)
        text = "<X_RAY> <thinking> Opacity in the right upper zone. </thinking> <answer> Pneumonia </answer>"
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": text}}]})

    with LoopbackServer(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])) as server:
        yield server.url, seen


def test_server_backend_sends_base64_image_and_parses(fake_vlm_server, tmp_path):
    url, seen = fake_vlm_server
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000), (90, 90, 90)).save(big)
    reply = medix.Assistant("MediX-R1-8B", server=url, max_new_tokens=64).ask("Diagnosis?", image=big)
    assert (reply.modality, reply.reasoning, reply.answer) == ("X_RAY", "Opacity in the right upper zone.",
                                                               "Pneumonia")
    assert reply.well_formed and any("downscaled" in n for n in reply.notes)
    [body] = seen
    assert body["model"] == "MBZUAI/MediX-R1-8B" and body["max_tokens"] == 64
    image_part, text_part = body["messages"][0]["content"]
    data_url = image_part["image_url"]["url"]
    assert data_url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    assert max(sent.size) == MAX_IMAGE_SIDE
    assert "<thinking>" in text_part["text"] and "Diagnosis?" in text_part["text"]


def test_server_down_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(MedixError, match=f"^server {url}, model 'MBZUAI/MediX-R1-2B': APIConnectionError"):
        medix.Assistant("MediX-R1-2B", server=url).ask("Diagnosis?")


def test_results_reader(tmp_path):
    (tmp_path / "scores.json").write_text(json.dumps(
        {"tasks": {"vqa-rad": {"score": 0.5, "n": 10}, "pmc-vqa": {"score": 70.0, "n": 30}}, "overall": 0.6}))
    rows = score_rows(tmp_path)
    assert rows == [{"task": "vqa-rad", "score": 50.0, "n": 10}, {"task": "pmc-vqa", "score": 70.0, "n": 30},
                    {"task": "overall", "score": 60.0, "n": 40}]
    table, message = open_results(str(tmp_path))
    assert table[-1] == ["overall", 60.0, 40] and "loaded 3 rows" in message
    _, message = open_results(str(tmp_path / "nowhere"))
    assert message.startswith("⚠️ no scores.json")
    (tmp_path / "scores.json").write_text('{"tasks": {"a": {"score": "high"}}}')
    with pytest.raises(MedixError, match="task 'a': expected a number"):
        score_rows(tmp_path)
    published, source = published_rows()
    assert source == "MediX-R1 model card / project page"
    assert {(r["model"], r["score"]) for r in published} == {("MediX-R1-8B", 68.8), ("MedGemma-27B", 68.4),
                                                            ("MediX-R1-30B", 73.6)}


def test_infer_server_has_a_short_default_timeout():
    from medix.infer import Assistant

    assistant = Assistant("MediX-R1-2B", server=f"http://127.0.0.1:{free_port()}/v1")
    assert assistant.backend.client.timeout_s <= 60


def test_infer_server_garbage_is_one_line_without_traceback(response_server):
    response_server["reply"] = lambda: JSONResponse({"id": "x", "choices": []})
    result = run_medix("infer", "--model", "MediX-R1-2B", "--server", response_server["url"], "--question",
                       "Diagnosis?")
    assert result.returncode == 2, result.stderr
    assert "empty 'choices' list" in result.stderr and "Traceback" not in result.stderr


def test_infer_zero_tokens_is_a_clear_error():
    result = run_medix("infer", "--question", "Diagnosis?", "--max-new-tokens", "0")
    assert result.returncode == 2 and "max_new_tokens must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_infer_names_a_dead_server_without_its_password():
    code, output, error = cli("infer", "--question", "Diagnosis?", "--timeout", "0.2",
                              "--server", f"http://medix:{PASSWORD}@127.0.0.1:{free_port()}/v1")
    assert code != 0 and error is not None and PASSWORD not in str(error) and PASSWORD not in output
