"""Benchmarks that cannot rot: every script in bench/ runs with --smoke (toy sizes, seconds) and prints a table.

    pytest -q tests/test_bench.py                  # every script (each loads real models: marked slow)
    pytest -q tests/test_bench.py -m "not slow"    # only the checks that need no model

The scripts are globbed, so a new bench/*.py is covered without touching this file; one without a --smoke mode
fails here, by name. Speed is never asserted: a smoke run's figures mean nothing, only that every row ran.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
# gpu_smoke.py is driven by bench/gpu_smoke.sh --smoke (it needs the shell wrapper's environment).
NOT_HERE = {"gpu_smoke.py"}
# These load the embedded SmolLM2 / MiniLM and run them (train_step: two GRPO steps).
SLOW = {"cpu_judge.py", "judge_prefix.py", "reward_throughput.py", "train_step.py"}
TIMEOUT_S = 600  # far above a smoke run; a script that takes this long has lost its toy sizes
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name not in NOT_HERE)

# A line that only draws a table's rules: rich borders, markdown's |---|:---:|, dashes.
RULE = re.compile(r"^[\s━─═┏┓┗┛┡┩┢┪╇╈┳┻┣┫╋└┘┌┐├┤┼┬┴╞╡╪|:+-]*$")


def cells(line: str) -> list[str]:
    """A line's cells: split at box-drawing or markdown bars when it starts with one (a rich or markdown row),
    else at runs of 2+ spaces (aligned columns, whose cells may hold a bar: "max |ΔP(YES)|")."""
    text = line.strip()
    if text[0] in "│┃|":
        return [c.strip() for c in re.split(r"[│┃|]", text.strip("│┃|"))]
    return re.split(r"\s{2,}", text)


def tables(text: str) -> list[list[list[str]]]:
    """Runs of >= 2 consecutive lines (rule lines ignored) with the same number (>= 2) of cells, at least one
    of them holding a figure: the header and rows of a table, in any of the forms the scripts print."""
    found, run = [], []
    for line in text.splitlines():
        if line.strip() and RULE.match(line):
            continue
        row = cells(line) if line.strip() else []
        if len(row) >= 2 and (not run or len(row) == len(run[0])):
            run.append(row)
            continue
        found.append(run)
        run = [row] if len(row) >= 2 else []
    found.append(run)
    return [t for t in found if len(t) >= 2 and any(re.search(r"\d", c) for r in t[1:] for c in r)]


@pytest.mark.parametrize("text, shape", [
    # rich (reward_throughput.py): header, rule, one row
    ("(a) title\n┏━━━┳━━━━┓\n┃ a ┃ b  ┃\n┡━━━╇━━━━┩\n│ x │ 1. │\n└───┴────┘\n  note\n", [(2, 2)]),
    # markdown (--markdown)
    ("### t\n\n| part | s |\n|---|---:|\n| rollout | 1.2 |\n| rest | 0.1 |\n", [(3, 2)]),
    # aligned columns (cpu_judge.py, train_step.py, judge_prefix.py), "–" for a skipped row
    ("judge    n   acc\nsmol     4  0.5\nqwen     –    –\n", [(3, 3)]),
    ("workload  speed-up  agreement\nGRPO      1.07x     max |ΔP(YES)| 2.8e-06\n", [(2, 3)]),
    # no table: prose, a header without rows, rows without figures, a log line
    ("Speed-up: 48x (target >= 50x).\n", []), ("a  b  c\n\ntext\n", []), ("a  b\nc  d\n", []),
    ("{'loss': '0', 'grad_norm': '0'}\n", []),
])
def test_table_detection(text, shape):
    assert [(len(t), len(t[0])) for t in tables(text)] == shape


def test_bench_folder_is_globbed():
    """The four CPU benchmarks are found (a renamed folder or a broken glob would silently test nothing)."""
    assert {"cpu_judge.py", "judge_prefix.py", "reward_throughput.py", "train_step.py"} <= set(SCRIPTS)


def run_smoke(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    try:
        return subprocess.run([sys.executable, str(BENCH / script), "--smoke"], cwd=REPO, env=env, text=True,
                              capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bench/{script} --smoke ran over {TIMEOUT_S} s: a smoke run must take seconds (toy sizes)")


@pytest.mark.parametrize("script", [pytest.param(s, marks=pytest.mark.slow) if s in SLOW else s for s in SCRIPTS])
def test_bench_script_smoke(script):
    # Checked before running: a script that ignores its arguments would start the full benchmark.
    assert "--smoke" in (BENCH / script).read_text(encoding="utf-8"), (
        f"bench/{script} has no --smoke mode; every bench script needs one (toy sizes, every table row, seconds) "
        "so that tests/test_bench.py can run it (see DEVELOPERS.md, Benchmarks)")
    done = run_smoke(script)
    tail = f"\n--- stdout (end) ---\n{done.stdout[-3000:]}\n--- stderr (end) ---\n{done.stderr[-3000:]}"
    if done.returncode == 2 and "unrecognized arguments: --smoke" in done.stderr:
        pytest.fail(f"bench/{script} does not accept --smoke{tail}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"bench/{script} --smoke exited {done.returncode}{tail}", pytrace=False)
    if not tables(done.stdout):
        pytest.fail(f"bench/{script} --smoke printed no table on stdout{tail}", pytrace=False)
