"""Golden outputs of a whole eval run, both protocols: records, judgments, scores and what the policy server
was sent must stay byte-for-byte the same across refactors of the eval code.

The run: the bundled sample set (11 tasks) plus tiny rows for the builders it lacks (USMLE letters with an
answer-text column, PMC-VQA choices with an answer that names no option, an IU X-ray report task) and one
VLM row whose image is missing (a failed generation: paper counts it 0, medix excludes it). Policy and judge
are the loopback stubs (`medix.testing.stub_server`); the policy replies `yes` in three shapes (REPLIES).
Only what depends on the stub's random port is masked: the server URL and the judge key that hashes it (the
key is checked against the identity instead). The data is copied under the test's folder and read through
a relative path, so image paths (inside the prompt hashes) do not depend on where the repo lives.

    MEDIX_WRITE_GOLDEN=1 pytest tests/eval/test_eval_golden.py     # rewrite tests/eval/golden/ (only on purpose)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from medix.judge.config import JudgeConfig
from medix.eval.config import EvalConfig
from medix.eval.runner import run_eval, sample_dir
from medix.judge import identity_key
from medix.testing.stub_server import JudgeStub, LoopbackServer, _completion, policy_reply

GOLDEN = Path(__file__).parent / "golden"
_URL = re.compile(r"http://127\.0\.0\.1:\d+(/v1)?")

EXTRA_ROWS = {
    "usmle_sa": [
        {"question": "Which nerve is injured?", "options": {"A": "radial", "B": "ulnar", "C": None, "D": "median"},
         "answer_idx": "B", "answer": "ulnar"},
        {"question": "Best next step?", "options": {"A": "wait", "B": "operate"}, "answer_idx": "A", "answer": ""},
    ],
    "pmc_vqa": [
        {"image": "../rad_vqa/images/synpic29265.jpg", "question": "Which modality?", "choices": ["CT", "MRI"],
         "answer": "B:MRI"},
        {"image": "../rad_vqa/images/synpic42202.jpg", "question": "Which organ?", "choices": ["lung", "liver"],
         "answer": "kidney"},
    ],
    "iu_xray_summarization": [
        {"uid": 7, "report": "The lungs are clear. No effusion.", "summary": "yes"},
        {"uid": 8, "report": "Cardiomegaly. Small left effusion.", "summary": "Cardiomegaly with effusion."},
    ],
}
MISSING_IMAGE = {"image": "images/not_there.jpg", "question": "is this normal?", "answer": "yes",
                 "answer_type": "CLOSED", "qid": 99}


def _data(root: Path) -> None:
    shutil.copytree(sample_dir(), root, ignore=shutil.ignore_patterns("*.md"))
    for task, rows in EXTRA_ROWS.items():
        (root / task).mkdir(exist_ok=True)
        (root / task / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with (root / "rad_vqa" / "test.jsonl").open("a") as fh:
        fh.write(json.dumps(MISSING_IMAGE) + "\n")


# What the policy writes, chosen by the request's digest: the MediX-R1 format, a bare answer after a think
# block (the two protocols extract different candidates), and reasoning only (an empty answer).
REPLIES = (policy_reply("yes"), "<think>simulated reasoning</think>\n\nyes", "<thinking>no answer given</thinking>")


class RecordingPolicy(LoopbackServer):
    """The stub policy (see REPLIES), keeping a digest of every request body: what the model was sent
    (question layout, system prompt, image encoding) is part of the golden."""

    def __init__(self):
        self.bodies: list[str] = []

        async def completions(request: Request):
            body = await request.json()
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            self.bodies.append(digest)
            return JSONResponse(_completion(body, REPLIES[int(digest, 16) % len(REPLIES)]))

        super().__init__(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])]))


def _mask(text: str, key: str) -> str:
    return _URL.sub("<stub-url>", text).replace(key, "JUDGE-KEY")


def _snapshot(out: Path, bodies: list[str]) -> dict[str, str]:
    """Every file the run wrote that the golden holds, masked, keyed by its path under OUT."""
    (key,) = [p.name for p in (out / "judgments").iterdir()]
    files = {"policy_requests.txt": "\n".join(sorted(bodies)) + "\n"}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and (path.suffix == ".jsonl" or path.name in ("scores.json", "run.json",
                                                                          "data_checks.json", "scores.md")):
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".jsonl":  # lines are appended as requests finish: their order is not behaviour
                text = "".join(sorted(text.splitlines(keepends=True), key=lambda line: json.loads(line)["id"]))
            files[_mask(rel, key)] = _mask(text, key)
    return files


@pytest.mark.parametrize("protocol", ["paper", "medix"])
def test_eval_run_outputs_match_the_golden(tmp_path, monkeypatch, protocol):
    monkeypatch.chdir(tmp_path)
    _data(Path("data"))
    with RecordingPolicy() as policy, JudgeStub() as judge:
        judge_cfg = JudgeConfig(backend="openai", model="stub-judge", base_urls=[judge.url], max_tokens=32,
                                timeout_s=5.0, backoff_s=0.01, max_retries=1)
        cfg = EvalConfig(model="stub-policy", backend="openai", base_urls=[policy.url], data_dir="data",
                         output_dir="run", judge=judge_cfg, protocol=protocol, tasks=["all"], bootstrap=50,
                         max_retries=1, system_prompt="You are a careful clinician.")
        result = run_eval(cfg)
    assert result.failures == {"generate/rad_vqa": 1, "judge/rad_vqa": 1}  # the missing image, both phases
    out = tmp_path / "run"
    (key,) = [p.name for p in (out / "judgments").iterdir()]
    scores = json.loads((out / "scores.json").read_text())
    assert scores["judge_key"] == key == identity_key(scores["judge"])  # what the mask hides, checked here
    got = _snapshot(out, policy.bodies)
    folder = GOLDEN / f"eval_{protocol}"
    if os.environ.get("MEDIX_WRITE_GOLDEN"):
        shutil.rmtree(folder, ignore_errors=True)
        for rel, text in got.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text, encoding="utf-8")
    expected = {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
                for p in sorted(folder.rglob("*")) if p.is_file()}
    assert sorted(got) == sorted(expected)
    for rel in expected:
        assert got[rel] == expected[rel], f"{protocol}: {rel} differs from tests/eval/golden/eval_{protocol}/{rel}"
