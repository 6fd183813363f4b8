"""Blind expert review: statistics against their authors' worked examples, set building and blinding, the SQLite
store under concurrent reviewers, the report, bad input, and the page in headless Chromium (two reviewers at
once; a server killed with SIGKILL).

    python -m pytest -q tests/review/test_review.py    # browser tests need Debian chromium: apt-get install -y chromium

Two eval runs of two stub "models" over the bundled sample set are made once (loopback policy and judge stubs):
model alpha answers "yes" to everything, model beta "no".
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter

import numpy as np
import pytest

from helpers.cli_runner import cli
from helpers import REPO
from medix.errors import MedixError
from medix.review.stats import cohen_kappa, fleiss_kappa, krippendorff_alpha, wilson
from medix.review.store import ReviewStore, Settings, check_reviewer

MODELS = ("stub-model-alpha", "stub-model-beta")
TASKS = ["rad_vqa", "path_vqa", "mmlu_anatomy"]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


# ---- statistics: expected values from the published worked examples -------------------------------------------
@pytest.mark.parametrize("successes, n, low, high", [
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_matches_newcombe_1998_table_1(successes, n, low, high):
    got = wilson(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_cohen_kappa_textbook_two_by_two():
    # 50 proposals, two readers: yes/yes 20, yes/no 5, no/yes 10, no/no 15 → p_o 0.70, p_e 0.50, kappa 0.40
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.40)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # one category everywhere: chance agreement 1, undefined


def test_fleiss_kappa_worked_example():
    # The classic worked example of Fleiss' kappa: 10 subjects, 14 raters, 5 categories → P 0.378, Pe 0.213, 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(np.array(table)) == pytest.approx(0.210, abs=5e-4)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[2, 0], [1, 2]]))


def test_krippendorff_alpha_reliability_data_examples():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", example C: 4 observers, 12 units,
    # missing values → nominal 0.743, ordinal 0.815
    n = None
    observers = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
                 [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    units = {u: [o[u] for o in observers if o[u] is not None] for u in range(12)}
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, order=[1, 2, 3, 4, 5]) == pytest.approx(0.815, abs=5e-4)
    # ... example A: two observers, binary data, 10 units → 0.095
    a, b = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert krippendorff_alpha({u: [a[u], b[u]] for u in range(10)}) == pytest.approx(0.095, abs=5e-4)


# ---- two sample eval runs, made once --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from medix.judge.config import JudgeConfig
    from medix.eval.config import EvalConfig
    from medix.eval.runner import run_eval, sample_dir
    from medix.testing.stub_server import JudgeStub

    root = tmp_path_factory.mktemp("runs")
    with JudgeStub() as judge:
        for model, answer in zip(MODELS, ("yes", "no")):
            with JudgeStub(role="policy", policy_answer=answer) as policy:
                judge_cfg = JudgeConfig(backend="openai", model="stub-judge", base_urls=[judge.url], max_tokens=32,
                                        timeout_s=2, backoff_s=0.01, max_retries=1, cache=False)
                run_eval(EvalConfig(model=model, backend="openai", base_url=policy.url, data_dir=str(sample_dir()),
                                    output_dir=str(root / model), judge=judge_cfg, tasks=TASKS, max_new_tokens=32,
                                    bootstrap=10, max_retries=0, protocol="medix"))
    return [root / m for m in MODELS]


def _build(runs, path, kind="pairwise", k=2, **options):
    from medix.eval.runner import sample_dir
    from medix.review.build import build_set

    chosen = runs if kind == "pairwise" else runs[:1]
    return build_set(path, chosen, Settings(kind, k, seed=options.pop("seed", 0)), data_dir=str(sample_dir()),
                     **options)


@pytest.fixture
def pairwise(runs, tmp_path):
    return _build(runs, tmp_path / "review.sqlite")


def _hidden(store):
    return {r["key"]: dict(r) for r in store.rows("SELECT * FROM items JOIN hidden ON hidden.item = items.key")}


def test_create_samples_by_stratum_keeps_images_and_blinds(runs, tmp_path):
    store = _build(runs, tmp_path / "a.sqlite")
    rows = list(_hidden(store).values())
    assert Counter(r["task"] for r in rows) == {"rad_vqa": 5, "path_vqa": 5, "mmlu_anatomy": 5}
    assert all(r["image"] for r in rows if r["task"] != "mmlu_anatomy")  # VLM items carry their image bytes
    assert {r["modality"] for r in rows} == {"image", "text"}
    first_as_a = sum(r["slot_a"] == 1 for r in rows)
    assert abs(first_as_a - (len(rows) - first_as_a)) <= 1  # balanced: A is model 1 on half of the items
    assert all(r["answer_a"] == ("yes" if r["slot_a"] == 1 else "no") for r in rows)  # the mapping is right
    orders = {tuple(r["slot_a"] for r in _hidden(_build(runs, tmp_path / f"s{s}.sqlite", seed=s)).values())
              for s in range(4)}
    assert len(orders) > 1  # the order is random (seeded), not a fixed pattern
    small = list(_hidden(_build(runs, tmp_path / "b.sqlite", per_task=2, n=5)).values())
    assert len(small) == 5 and max(Counter(r["task"] for r in small).values()) == 2
    items = store.rows("SELECT * FROM items")  # what the page can read: no model name or run path anywhere
    text = json.dumps([{k: v for k, v in dict(r).items() if k != "image"} for r in items])
    assert not any(name in text for name in MODELS) and str(runs[0].parent) not in text


def test_assignment_gives_each_item_k_distinct_reviewers_under_concurrency(pairwise):
    failures = []

    def review(reviewer):
        try:
            while (item := pairwise.next_item(reviewer)) is not None:
                assert pairwise.submit(item.key, reviewer, random.choice(["A", "B", "tie", "both_wrong"]))
        except Exception as err:  # noqa: BLE001 — reported below
            failures.append(err)

    threads = [threading.Thread(target=review, args=(f"dr-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    per_item = Counter(r["item"] for r in pairwise.rows("SELECT item FROM reviews"))
    assert set(per_item.values()) == {2} and len(per_item) == 15  # exactly k each, nobody lost, nobody twice
    assert pairwise.rows("SELECT COUNT(*) AS n FROM (SELECT item, reviewer FROM reviews GROUP BY 1, 2)")[0]["n"] == 30


def test_resume_lease_and_double_submission(pairwise):
    first = pairwise.next_item("dr-1")
    assert pairwise.next_item("dr-1").key == first.key  # a reload resumes the item on screen
    second = pairwise.next_item("dr-2", now=time.time())
    assert second.key == first.key  # k = 2: the item may go to a second reviewer at once
    third = pairwise.next_item("dr-3")
    assert third.key != first.key  # ... but not to a third while two hold it
    assert pairwise.submit(first.key, "dr-1", "A") is True
    assert pairwise.submit(first.key, "dr-1", "B") is False  # told "already recorded"; the first answer kept
    assert [r["choice"] for r in pairwise.rows("SELECT choice FROM reviews")] == ["A"]
    later = time.time() + 3600  # dr-2's lease has run out: the slot goes back to the pool
    assert pairwise.next_item("dr-4", now=later).key == first.key
    with pytest.raises(MedixError, match="choice 'maybe'"):
        pairwise.submit(first.key, "dr-5", "maybe")


@pytest.mark.parametrize("reviewer", ["", "dr 1", "dr-1<script>", "a" * 65, "dr/1", "ärztin"])
def test_odd_reviewer_ids_are_refused(reviewer):
    with pytest.raises(MedixError, match="reviewer ID"):
        check_reviewer(reviewer)


def test_bad_input_is_named(runs, tmp_path):
    from medix.eval.runner import sample_dir

    no_mcq, only_mcq = tmp_path / "a", tmp_path / "b"
    shutil.copytree(runs[0], no_mcq)
    shutil.copytree(runs[1], only_mcq)
    (no_mcq / "generations" / "mmlu_anatomy.jsonl").unlink()
    for task in ("rad_vqa", "path_vqa"):
        (only_mcq / "generations" / f"{task}.jsonl").unlink()
    out = str(tmp_path / "x.sqlite")
    code, output, error = cli("review", "create", "--run", str(no_mcq), "--run", str(only_mcq), "-o", out)
    assert error is not None and "no item answered in every run" in str(error)
    paper = tmp_path / "paper"
    shutil.copytree(runs[1], paper)
    manifest = json.loads((paper / "run.json").read_text())
    manifest["generator"]["protocol"] = "paper"
    (paper / "run.json").write_text(json.dumps(manifest))
    _, _, error = cli("review", "create", "--run", str(runs[0]), "--run", str(paper), "-o", out, "--sample")
    assert "used protocol 'medix'" in str(error) and "'paper'" in str(error)
    _, _, error = cli("review", "create", "--run", str(runs[0]), "--run", str(runs[1]), "-o", out)
    assert "asks about images" in str(error) and "--data-dir" in str(error)  # no data given: no images
    data = tmp_path / "data"
    shutil.copytree(sample_dir(), data)
    first_image = json.loads((data / "rad_vqa" / "test.jsonl").read_text().splitlines()[0])["image"]
    (data / "rad_vqa" / first_image).unlink()
    _, _, error = cli("review", "create", "--run", str(runs[0]), "--run", str(runs[1]), "-o", out,
                      "--data-dir", str(data))
    assert "task rad_vqa, item 0: image missing" in str(error)
    _, _, error = cli("review", "create", "--run", str(runs[0]), "--kind", "grading", "--run", str(runs[1]), "-o", out)
    assert "takes 1 --run folder" in str(error)
    assert not (tmp_path / "x.sqlite").exists()  # nothing half-written


def test_a_set_of_another_version_and_two_servers_are_refused(pairwise, tmp_path):
    with pairwise.serving("http://127.0.0.1:1"):
        with pytest.raises(MedixError, match=rf"already served by pid {os.getpid()} on .* at http://127.0.0.1:1"):
            with ReviewStore.open(pairwise.path).serving("http://127.0.0.1:2"):
                pass
    with ReviewStore.open(pairwise.path).serving("http://127.0.0.1:2"):  # released when the first stopped
        pass
    with sqlite3.connect(pairwise.path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    code, _, error = cli("review", "serve", str(pairwise.path))
    assert code != 0 and "schema version 99" in str(error) and "build the set again" in str(error)
    not_a_set = tmp_path / "notes.sqlite"
    not_a_set.write_text("hello")
    assert "is not a medix review set" in str(cli("review", "report", str(not_a_set))[2])


def _review_all(store, choose):
    """Reviewers dr-1 and dr-2 review every item; choose(reviewer, hidden row) → choice."""
    hidden = _hidden(store)
    for reviewer in ("dr-1", "dr-2"):
        while (item := store.next_item(reviewer)) is not None:
            store.submit(item.key, reviewer, choose(reviewer, hidden[item.key]))
    return hidden


def test_pairwise_report_unblinds_counts_agreement_and_judge(pairwise, tmp_path):
    from medix.review.report import build_report, text_report

    def choose(reviewer, row):  # both prefer alpha's "yes" on VQA; on MCQ dr-1 says both wrong, dr-2 tie
        if row["task"] == "mmlu_anatomy":
            return "both_wrong" if reviewer == "dr-1" else "tie"
        return "A" if row["slot_a"] == 1 else "B"

    _review_all(pairwise, choose)
    report = build_report(pairwise)
    overall = report["overall"]
    assert (overall["model_1_better"], overall["model_2_better"], overall["tie"],
            overall["both_wrong"]) == (20, 0, 5, 5)
    assert overall["decisive"]["share"] == 1.0 and overall["decisive"]["ci_wilson"] == pytest.approx(
        list(wilson(20, 20)))
    assert overall["ties_half"]["share"] == pytest.approx((10 * 1.0 + 5 * 0.5) / 15)
    assert report["breakdowns"]["task"]["mmlu_anatomy"]["ties_half"]["share"] == 0.5
    agreement = report["agreement"]
    first = ["model 1 better"] * 10 + ["both wrong"] * 5
    second = ["model 1 better"] * 10 + ["tie"] * 5
    assert agreement["overlapping_items"] == 15 and agreement["cohen_kappa"] == pytest.approx(
        cohen_kappa(first, second))
    judge = report["judge_vs_experts"]  # MCQ: no majority (both wrong vs tie); VQA: judge YES where "yes" is right
    assert judge["no_consensus"] == 5 and judge["n"] == 10
    right = sum(1 for r in _hidden(pairwise).values() if r["task"] != "mmlu_anatomy" and r["reference"] == "yes")
    assert judge["agreement"] == pytest.approx(right / 10)  # judge says "both wrong" where the reference is not yes
    assert "stub-model-alpha" in text_report(report) and "Cohen's kappa dr-1 / dr-2" in text_report(report)


def test_grading_report_html_and_audit_export_read_back(runs, tmp_path):
    from medix.judge.audit import pairs_from_file

    store = _build(runs, tmp_path / "grading.sqlite", kind="grading")

    def choose(reviewer, row):  # the experts agree with the judge except on one item, where they say partial
        if row["key"] == 1:
            return "partial"
        return "correct" if row["verdict_a"] == 1.0 else "incorrect"

    hidden = _review_all(store, choose)
    out = tmp_path / "out"
    out.mkdir()
    code, text, _ = cli("review", "report", str(store.path), "--json", str(out / "r.json"), "--html",
                        str(out / "r.html"), "--pairs", str(out / "pairs.jsonl"))
    assert code == 0 and "experts' accuracy" in text and "stub-model-alpha" in text
    report = json.loads((out / "r.json").read_text())
    assert report["judge_vs_experts"]["agreement"] == 1.0 and report["judge_vs_experts"]["n"] == 14
    assert report["judge_vs_experts"]["partial_judged"] and report["agreement"]["alpha_nominal"] == 1.0
    correct = sum(1 for k, r in hidden.items() if k != 1 and r["verdict_a"] == 1.0)
    assert report["overall"]["accuracy"] == pytest.approx(2 * correct / 30)
    page = (out / "r.html").read_text()
    assert "data:image/png;base64," in page and "Unblinded" in page
    pairs = pairs_from_file(out / "pairs.jsonl")
    assert len(pairs) == 14 and sum(p.label for p in pairs) == correct
    assert all(p.source.startswith("expert grading: ") and p.question for p in pairs)
    code, _, error = cli("review", "report", str(store.path), "--json", str(store.path), "--overwrite")
    assert code != 0 and "is the input file" in str(error)
    code, _, error = cli("review", "create", "--run", str(runs[0]), "--kind", "grading", "--sample", "-o",
                         str(store.path), "--overwrite")
    assert code != 0 and "holds 30 reviews" in str(error) and len(store.rows("SELECT id FROM reviews")) == 30


def test_audit_export_runs_through_medix_judge_audit(runs, tmp_path):
    store = _build(runs, tmp_path / "grading.sqlite", kind="grading", k=1)
    _review_all(store, lambda reviewer, row: "correct" if row["verdict_a"] == 1.0 else "incorrect")
    pairs = tmp_path / "pairs.jsonl"
    assert cli("review", "report", str(store.path), "--pairs", str(pairs))[0] == 0
    code, output, error = cli("judge", "audit", "--pairs", str(pairs), "--judge-backend", "local", "--judge-model",
                              "smollm2-135m", "--rounds", "1", "--json", str(tmp_path / "audit.json"))
    assert code == 0, (output, error)
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["pairs"] == 15
    assert "expert grading: rad_vqa" in json.dumps(audit)


# ---- the page in a real browser ---------------------------------------------------------------------------------
def _chromium():
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian chromium is required for the browser tests: apt-get install -y chromium")
    return executable


def _start(page, reviewer):
    page.locator("#reviewer-id textarea, #reviewer-id input").first.fill(reviewer)
    page.locator("#review-start").click()


def _header(page) -> str:
    return page.locator("#review-header").inner_text()


def _key(page) -> str:
    """The item number on screen (a loading timer may precede it in the header)."""
    return re.search(r"Item (\d+) ·", _header(page)).group(1)


def _review(page, choice: str, key: str | None = None) -> None:
    """Choose by button (or by keyboard shortcut `key`) and wait until the page says the item was recorded."""
    item = f"item {_key(page)}"
    if key is None:
        page.locator(f"#choice-{choice}").click()
    else:
        page.keyboard.press(key)
    page.locator("#review-status").get_by_text(f"{item}: recorded").wait_for()


@pytest.mark.slow
def test_two_reviewers_at_once_in_chromium_never_see_a_model_name(runs, tmp_path):
    from playwright.sync_api import sync_playwright

    from medix.review.app import build_review_app, launch_review
    from medix.review.report import build_report
    from medix.testing.stub_server import free_port

    store = _build(runs, tmp_path / "review.sqlite", per_task=2)  # 6 items, k = 2
    demo = build_review_app(store)
    url = launch_review(demo, "pairwise", port=free_port(), block=False)
    bodies: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
            pages = []
            for _ in range(2):  # two reviewers, two browser contexts (separate cookies and sessions)
                page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
                page.set_default_timeout(60_000)
                page.on("response", lambda r: bodies.append(_body(r)))
                page.goto(url)
                pages.append(page)
            first, second = pages
            assert "Research use only" in first.locator("#review-note").inner_text()
            _start(first, "dr 1; <b>x</b>")
            first.locator("#review-status").get_by_text("reviewer ID").wait_for()
            _start(first, "dr-1")
            _start(second, "dr-2")
            first.locator("#answer-a textarea").wait_for()
            second.locator("#answer-a textarea").wait_for()
            assert _key(first) == _key(second)  # k = 2: both may review the first item at once
            ARTIFACTS.mkdir(exist_ok=True)
            first.locator("#reasoning-a-panel").click()  # the reasoning folds out
            first.screenshot(path=str(ARTIFACTS / "review_item.png"), full_page=True)
            keys = {"A": "a", "B": "b"}
            for step in range(6):  # each reviewer: every item, by turns; mouse for dr-1, keyboard for dr-2
                for page, reviewer in ((first, "dr-1"), (second, "dr-2")):
                    answer = page.locator("#answer-a textarea").input_value()
                    choice = "A" if answer == "yes" else "B"  # both prefer the "yes" model ...
                    if reviewer == "dr-2" and _header(page).endswith("mmlu_anatomy · text"):
                        choice = "tie"  # ... but dr-2 calls the MCQ items (both wrong answers) a tie
                    _review(page, choice, keys[choice] if reviewer == "dr-2" and choice != "tie" else None)
            for page in pages:
                page.locator("#review-status").get_by_text("Nothing left").wait_for()
            second.screenshot(path=str(ARTIFACTS / "review_done.png"), full_page=True)
            browser.close()
    finally:
        demo.close()
    reviews = store.rows("SELECT item, reviewer FROM reviews")
    assert len(reviews) == 12 and Counter(r["item"] for r in reviews) == {k: 2 for k in range(1, 7)}
    report = build_report(store)
    assert report["overall"]["model_1_better"] >= 8 and report["agreement"]["cohen_kappa"] is not None
    assert report["judge_vs_experts"]["n"] > 0
    leaked = [b for b in bodies if any(s in b for s in (*MODELS, str(runs[0]), str(runs[0].parent)))]
    assert any("recorded (A is better)" in b for b in bodies)  # the data channel itself was captured
    assert not leaked, "a model name or run path reached the reviewers' page"


def _body(response) -> str:
    try:
        return response.body().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 — a redirect or a stream has no body
        return ""


@pytest.mark.slow
def test_sigkill_mid_session_loses_no_submitted_review(runs, tmp_path):
    from playwright.sync_api import sync_playwright

    from medix.testing.stub_server import free_port

    store = _build(runs, tmp_path / "review.sqlite", k=1)
    port = free_port()
    command = [sys.executable, "-m", "medix", "review", "serve", str(store.path), "--port", str(port)]
    server = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        _wait_for_port(port, server)
        other = subprocess.run([*command[:-1], str(free_port())], capture_output=True, text=True, timeout=120)
        assert other.returncode == 2 and f"already served by pid {server.pid}" in other.stderr.replace("\n", " ")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/")
            _start(page, "dr-1")
            page.locator("#answer-a textarea").wait_for()
            for choice, key in (("A", "1"), ("B", "2"), ("tie", "3")):
                _review(page, choice, key)
            copy = tmp_path / "copy.sqlite"
            shutil.copy(store.path, copy)  # a plain copy while the server runs holds every review so far
            assert len(ReviewStore.open(copy).rows("SELECT * FROM reviews")) == 3
            server.send_signal(signal.SIGKILL)  # a fourth item is on screen, not submitted
            server.wait(timeout=30)
            browser.close()
    finally:
        if server.poll() is None:
            server.kill()
    choices = [r["choice"] for r in ReviewStore.open(store.path).rows("SELECT choice FROM reviews ORDER BY id")]
    assert choices == ["A", "B", "tie"]
    with ReviewStore.open(store.path).serving("http://127.0.0.1:0"):  # the dead server's lock went with it
        pass


def _wait_for_port(port, process, timeout=120):
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read().decode())
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("medix review serve did not come up")
