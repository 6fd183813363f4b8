"""The eval walk in docs/architecture.md is the code's: `medix eval run` (both backends openai, loopback
stubs) is traced, and the medix files each phase enters must be the ones the page lists for that phase.

Only function calls are traced (module bodies and other imports are not part of a walk); a phase starts
where the runner hands over to it (`_generate`, `_judge_phase`, `read_judgments`, `write_report`).
"""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path

from typer.testing import CliRunner

import medix
from medix.cli import app
from medix.testing.judge_server import JudgeStub

PACKAGE = Path(medix.__file__).parent
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
STARTS = {"_generate": "generate", "_judge_phase": "judge", "read_judgments": "score", "write_report": "report"}


def traced_eval_run(tmp_path: Path) -> dict[str, list[str]]:
    """{phase: medix files entered, in order of first entry} of one `medix eval run`."""
    data = tmp_path / "data" / "path_vqa"
    data.mkdir(parents=True)
    data.joinpath("test.jsonl").write_text("".join(json.dumps({"image": None, "question": f"q{i}", "answer": "a",
                                                               "answer_type": "OPEN"}) + "\n" for i in range(2)))
    walk: dict[str, list[str]] = {"command": []}
    phase = ["command"]
    root = str(PACKAGE)

    def profile(frame, event, arg):
        code = frame.f_code
        if event != "call" or not code.co_filename.startswith(root) or "/testing/" in code.co_filename:
            return
        outer = frame
        while outer is not None:  # inside an import: module code, not the walk
            if outer.f_code.co_name == "<module>" and outer.f_code.co_filename.startswith(root):
                return
            outer = outer.f_back
        if code.co_name in STARTS:
            phase[0] = STARTS[code.co_name]
        files = walk.setdefault(phase[0], [])
        rel = Path(code.co_filename).relative_to(PACKAGE).as_posix()
        if rel not in files:
            files.append(rel)

    with JudgeStub(role="policy", policy_answer="a") as policy, JudgeStub() as judge:
        args = ["eval", "run", "--model", "stub-policy", "--tasks", "path_vqa", "--data-dir", str(tmp_path / "data"),
                "-o", str(tmp_path / "run"), "--backend", "openai", "--base-url", policy.url, "--judge-backend",
                "openai", "--judge-model", "stub-judge", "--judge-url", judge.url, "--allow-text-only",
                "--max-new-tokens", "8"]
        threading.setprofile(profile)
        sys.setprofile(profile)
        try:
            result = CliRunner().invoke(app, args)
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
    assert result.exit_code == 0, result.output
    return walk


def documented_walk() -> dict[str, list[str]]:
    """The phases of "Walk 2" in docs/architecture.md: lines `N. **phase** (k files): `a.py` → `b.py` ...`."""
    section = DOC.read_text(encoding="utf-8").split("## Walk 2", 1)[1].split("\n## ", 1)[0]
    walk = {}
    for line in section.splitlines():
        found = re.match(r"\d+\. \*\*(\w+)\*\* \((\d+) files\): (.*)", line)
        if found:
            files = re.findall(r"`([\w/]+\.py)`", found.group(3))
            assert len(files) == int(found.group(2)), f"{found.group(1)}: says {found.group(2)}, lists {len(files)}"
            walk[found.group(1)] = files
    return walk


def test_the_documented_eval_walk_is_the_codes(tmp_path):
    traced, documented = traced_eval_run(tmp_path), documented_walk()
    assert list(documented) == ["command", "generate", "judge", "score", "report"]
    for phase, files in traced.items():
        assert set(files) == set(documented[phase]), (
            f"{phase}: the code enters {files}; docs/architecture.md lists {documented[phase]}")
