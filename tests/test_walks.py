"""The two walks in docs/architecture.md are the code's. Walk 1: one TRL reward call of a training run (OpenAI
judge on a loopback stub, verdict cache on) is traced from the trainer's `_calculate_rewards`, on the second
call (the first also builds the judge and loads the embedder). Walk 2: `medix eval run` (both backends openai,
loopback stubs), phase by phase. The medix files each one enters must be the ones the page lists.

Only function calls are traced (module bodies and other imports are not part of a walk); an eval phase starts
where the runner hands over to it (`_generate`, `_judge_phase`, `read_judgments`, `write_report`).
"""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path

from helpers.scripted_run import scripted_run, train
from typer.testing import CliRunner

import medix
from medix.cli import app
from medix.testing.stub_server import JudgeStub

PACKAGE = Path(medix.__file__).parent
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
STARTS = {"_generate": "generate", "_judge_phase": "judge", "read_judgments": "score", "write_report": "report"}


def medix_file(frame) -> str | None:
    """The medix file a call enters (package-relative), or None: outside medix, in medix.testing, or inside
    an import (module code is not part of a walk)."""
    name = frame.f_code.co_filename
    if not name.startswith(str(PACKAGE)) or "/testing/" in name:
        return None
    outer = frame
    while outer is not None:
        if outer.f_code.co_name == "<module>" and outer.f_code.co_filename.startswith(str(PACKAGE)):
            return None
        outer = outer.f_back
    return Path(name).relative_to(PACKAGE).as_posix()


def traced_reward_calls(tmp_path: Path) -> list[list[str]]:
    """Per TRL reward call of a two-step run: the medix files entered, in order of entry (a file entered again
    after another one appears again)."""
    calls: list[list[str]] = []
    active = [False]

    def profile(frame, event, arg):
        if event == "call" and active[0]:
            rel = medix_file(frame)
            if rel is not None and (not calls[-1] or calls[-1][-1] != rel):
                calls[-1].append(rel)

    def answer(prompt: str, k: int) -> str:  # an exact match, two answers for the judge, one without tags
        tag = sum(map(ord, prompt)) % 997  # the judge prompt holds no question: answers per prompt keep it new
        return ["<think>r</think> <answer>a</answer>", f"<think>r</think> <answer>a lung finding {tag}</answer>",
                "no tags", f"<think>x</think><answer>b c {tag}</answer>"][k]

    with JudgeStub() as stub:
        threading.setprofile(profile)  # the judge's loop thread starts inside the first call
        try:
            run = scripted_run(tmp_path, stub.url, answer, 8, "trainer.max_steps=2", "reward.judge.cache=true",
                               f"reward.judge.cache_path={tmp_path / 'verdicts.sqlite'}")
            rewards = run.trainer._calculate_rewards

            def traced(*args, **kwargs):
                calls.append([])
                active[0] = True
                sys.setprofile(profile)
                try:
                    return rewards(*args, **kwargs)
                finally:
                    sys.setprofile(None)
                    active[0] = False

            run.trainer._calculate_rewards = traced
            train(run)
        finally:
            threading.setprofile(None)
    return calls


def traced_eval_run(tmp_path: Path) -> dict[str, list[str]]:
    """{phase: medix files entered, in order of first entry} of one `medix eval run`."""
    data = tmp_path / "data" / "path_vqa"
    data.mkdir(parents=True)
    data.joinpath("test.jsonl").write_text("".join(json.dumps({"image": None, "question": f"q{i}", "answer": "a",
                                                               "answer_type": "OPEN"}) + "\n" for i in range(2)))
    walk: dict[str, list[str]] = {"command": []}
    phase = ["command"]

    def profile(frame, event, arg):
        rel = medix_file(frame) if event == "call" else None
        if rel is None:
            return
        if frame.f_code.co_name in STARTS:
            phase[0] = STARTS[frame.f_code.co_name]
        files = walk.setdefault(phase[0], [])
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


def documented_walk(walk: str) -> dict[str, list[str]]:
    """The lines `N. **name** (k files): `a.py` → `b.py` ...` of section "## Walk <walk>" in docs/architecture.md."""
    section = DOC.read_text(encoding="utf-8").split(f"## Walk {walk}", 1)[1].split("\n## ", 1)[0]
    walk = {}
    for line in section.splitlines():
        found = re.match(r"\d+\. \*\*(\w+)\*\* \((\d+) files\): (.*)", line)
        if found:
            files = re.findall(r"`([\w/]+\.py)`", found.group(3))
            assert len(files) == int(found.group(2)), f"{found.group(1)}: says {found.group(2)}, lists {len(files)}"
            walk[found.group(1)] = files
    return walk


def test_the_documented_reward_walk_is_the_codes(tmp_path):
    calls = traced_reward_calls(tmp_path)
    assert len(calls) >= 2, "the run made fewer than two reward calls"
    entered = list(dict.fromkeys(calls[1]))  # in order of first entry (the judge's thread interleaves)
    documented = documented_walk("1")["reward"]
    assert set(entered) == set(documented) and len(entered) == len(documented), (
        f"one reward call enters {entered}; docs/architecture.md lists {documented}")


def test_the_documented_eval_walk_is_the_codes(tmp_path):
    traced, documented = traced_eval_run(tmp_path), documented_walk("2")
    assert list(documented) == ["command", "generate", "judge", "score", "report"]
    for phase, files in traced.items():
        assert set(files) == set(documented[phase]), (
            f"{phase}: the code enters {files}; docs/architecture.md lists {documented[phase]}")
