"""`medix ui` in a real headless Chromium: upload an image, ask, see the answer; bad input keeps it up.

    python -m pytest -q tests/web/test_web.py        # needs Debian chromium: apt-get install -y chromium

Screenshots go to test-artifacts/ (gitignored). No browser download: Playwright drives the system chromium.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

from helpers import REPO
from helpers.cli_runner import cli

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def app_url():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from medix.testing.stub_server import free_port
    from medix.web.app import build_app, launch

    demo = build_app(max_new_tokens=12)
    url = launch(demo, port=free_port(), block=False)
    assert url.startswith("http://127.0.0.1:")
    yield url
    demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian chromium is required for the browser test: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 1000})
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(app_url)
        yield tab
        browser.close()


def _ask(page, file_path, question: str) -> None:
    if file_path is not None:
        page.locator("#image-upload input[type=file]").set_input_files(str(file_path))
    page.locator("#question textarea").fill(question)
    page.locator("#ask-button").click()


def test_upload_ask_and_answer(page, tmp_path):
    from medix.web.app import EXAMPLE_IMAGE

    assert "not for clinical decisions" in page.locator("#disclaimer").inner_text()
    _ask(page, EXAMPLE_IMAGE, "Is there an abnormal opacity in this chest X-ray?")
    answer = page.locator("#answer textarea")
    page.wait_for_function("() => document.querySelector('#answer textarea').value.trim().length > 0",
                           timeout=TIMEOUT_MS)
    assert answer.input_value().strip()
    assert "image was ignored" in page.locator("#status").inner_text()  # text-only embedded model
    assert page.locator("#modality-value").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-demo-answer.png"), full_page=True)


def test_bad_inputs_show_messages_and_server_stays_up(page, tmp_path):
    page.reload()  # a fresh page: the upload slot of the previous test is filled
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    page.locator("#image-upload input[type=file]").set_input_files(str(bad))
    status = page.locator("#status")
    status.get_by_text("not a readable image").wait_for()
    page.locator("#question textarea").fill("   ")
    page.locator("#ask-button").click()
    status.get_by_text("question is empty").wait_for()
    page.screenshot(path=str(ARTIFACTS / "web-demo-errors.png"), full_page=True)
    page.reload()  # the server still answers after the errors
    assert "not for clinical decisions" in page.locator("#disclaimer").inner_text()


def test_evaluation_tab_opens_results(page, tmp_path):
    (tmp_path / "scores.json").write_text('{"tasks": {"vqa-rad": {"score": 0.5, "n": 10}}, "overall": 0.5}')
    page.reload()
    page.get_by_role("tab", name="Evaluation").click()
    page.locator("#results-folder textarea, #results-folder input").first.fill(str(tmp_path))
    page.locator("#results-open").click()
    page.locator("#results-status").get_by_text("loaded 2 rows").wait_for()
    assert "vqa-rad" in page.locator("#results-table").inner_text()
    assert "MediX-R1 model card / project page" in page.content()
    page.screenshot(path=str(ARTIFACTS / "web-demo-evaluation.png"), full_page=True)


def test_ui_on_a_busy_port_is_refused_before_serving(monkeypatch):
    import medix.web.app

    monkeypatch.setattr(medix.web.app, "build_app", lambda *a, **k: pytest.fail("built the app on a busy port"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, output, error = cli("ui", "--port", str(port))
    assert code != 0 and f"--port {port}" in str(error) and "already in use" in str(error)
    assert "serving" not in output
