#!/usr/bin/env python
"""Shared-prefix judging of GRPO groups, float32 vs the runtime dtype, side by side, on the local (logit) judge.

Run from the repository root with the venv active, on an idle machine:

    python bench/judge_prefix.py --model qwen2.5-coder-1.5b --questions 4 --repeats 2 --workloads grpo4,grpo5 --markdown
    python bench/judge_prefix.py --markdown      # SmolLM2-135M, 8 questions, 3 repeats, groups of 4 and 5
                                                 # + 3-round eval
    python bench/judge_prefix.py --model qwen2.5-coder-1.5b --dtypes float32,bfloat16 --no-plain   # AVX2: emulated bf16
    python bench/judge_prefix.py --smoke         # SmolLM2, 1 question, 1 run: every row shape (CI, seconds)

Workloads, built from real MedQA items (benchmark mirrors beside the repo, else the bundled sample set):
  grpo4 / grpo5  one-turn verdicts, each question + reference judged against a GRPO group of 4 answers (its
                 four options) or 5 (the options and a rephrased correct answer), as a group is judged in
                 training;
  eval           the evaluation conversation (paper protocol) on the groups of 5, three rounds.
Rows: one per workload and dtype — float32 and the runtime choice (`medix.models.runtime_dtype("cpu", "auto")`:
bfloat16 where the CPU has native bf16, else float32 alone, with a note); `--dtypes` forces the set. Each row
times the shared-prefix path and, unless --no-plain, today's batched forward without prefix sharing ("plain").
Every dtype and path runs the same prompts in this one process, interleaved over `--repeats` runs (the order
of the dtypes rotating), so all rows see the same machine state (compare ratios, not absolute figures). P(YES)
is compared between the paths (same dtype) and against float32 (same path), with the share of identical
verdicts at the judge's threshold. The CPU facts the figures depend on are printed first (bench/hardware.py).
Speed is never asserted in tests; the tables go to docs/performance.md and docs/cpu_judge.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

# bench/hardware.py (this script's folder is first on sys.path when it is run)
from hardware import dtype_label, plan_dtypes
from hardware import show as show_hardware

from medix.judge.config import JudgeConfig
from medix.errors import MedixError
from medix.judge import Judge, JudgeRequest
from medix.judge.local_backend import LocalBackend
from medix.models import QWEN_CODER, runtime_dtype

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "benchmarks" / "medqa" / "test.jsonl"
SAMPLE = REPO / "src" / "medix" / "eval" / "sample" / "medqa" / "test.jsonl"
GROUP = {"grpo4": 4, "grpo5": 5, "eval": 5}  # answers judged per question
# --smoke: every workload and both dtypes whatever the CPU, at toy sizes (one question, one run).
SMOKE = {"model": "smollm2-135m", "questions": 1, "repeats": 1, "workloads": "grpo4,grpo5,eval",
         "dtypes": "float32,bfloat16"}
TARGET_VPS = 1.0  # verdicts/s wanted for the CPU judge on GRPO groups, runtime dtype, 2 cores (float32: 0.35)


def groups(n_questions: int, size: int) -> list[JudgeRequest]:
    """Each question + its correct option judged against `size` answers: the 4 options (+ a rephrased correct one)."""
    source = MIRROR if MIRROR.is_file() else SAMPLE
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()][:n_questions]
    requests = []
    for row in rows:
        options = [row[f"ending{i}"] for i in range(4)]
        reference = options[row["label"]]
        answers = (options + [f"The answer is {reference[0].lower() + reference[1:]}."])[:size]
        requests += [JudgeRequest(candidate=a, reference=reference, question=row["sent1"]) for a in answers]
    return requests


class Timings:
    """Per (workload, dtype, path): the seconds of each run and the last output (P(YES) list or conversations)."""

    def __init__(self):
        self.secs: dict[tuple, list[float]] = {}
        self.out: dict[tuple, object] = {}

    def time(self, key: tuple, fn) -> None:
        start = time.perf_counter()
        self.out[key] = fn()
        self.secs.setdefault(key, []).append(time.perf_counter() - start)

    def vps(self, key: tuple, n: int) -> float | None:
        return n / statistics.median(self.secs[key]) if key in self.secs else None


def build_judges(model: str, dtypes: list[str], paths: list[str], batch_size: int) -> dict[tuple, Judge]:
    """(dtype, path) → a Judge on the local backend; the paths of one dtype share the model (load_causal_lm)."""
    judges = {}
    for dtype in dtypes:
        for path in paths:
            cfg = JudgeConfig(model=model, device="cpu", dtype=dtype, shared_prefix=path == "shared",
                              batch_size=batch_size, cache=False)
            judges[dtype, path] = Judge(cfg, backend=LocalBackend(cfg))
    return judges


def measure(judges: dict[tuple, Judge], dtypes: list[str], paths: list[str], workloads: list[str],
            n_questions: int, repeats: int) -> tuple[Timings, dict[str, list[JudgeRequest]]]:
    """Every (workload, dtype, path) `repeats` times, interleaved: run r visits the dtypes starting at r."""
    requests = {w: groups(n_questions, GROUP[w]) for w in workloads}
    any_judge = next(iter(judges.values()))
    prompts = {w: [any_judge.render(r) for r in requests[w]] for w in workloads}
    for judge in judges.values():  # warm-up outside the clock: first-call allocations and kernel selection
        judge.backend.p_yes(prompts[workloads[0]][:judge.config.batch_size])
    t = Timings()
    for r in range(repeats):
        for w in workloads:
            for dtype in dtypes[r % len(dtypes):] + dtypes[:r % len(dtypes)]:
                for path in paths:
                    judge = judges[dtype, path]
                    if w == "eval":
                        t.time((w, dtype, path), lambda j=judge, w=w: j.converse(requests[w], 3, protocol="paper"))
                    else:
                        t.time((w, dtype, path), lambda j=judge, w=w: j.backend.p_yes(prompts[w]))
    return t, requests


def max_dp(a: list[float], b: list[float]) -> str:
    return f"max |ΔP(YES)| {max(abs(x - y) for x, y in zip(a, b)):.1e}"


def same_rounds(a: list, b: list) -> str:
    return f"{sum(x.rounds == y.rounds for x, y in zip(a, b))}/{len(a)} identical rounds"


def rows_of(t: Timings, requests: dict, dtypes: list[str], threshold: float) -> list[list[str]]:
    """One table row per (workload, dtype), float32 first; each compared with its plain path (same dtype) and
    with float32 (same shared-prefix path, same prompts)."""
    rows = []
    for w, reqs in requests.items():
        n, name = len(reqs), (f"3-round eval ({len(reqs)} conversations)" if w == "eval"
                              else f"GRPO groups of {GROUP[w]} ({len(reqs) // GROUP[w]} x {GROUP[w]}, one-turn)")
        compare = same_rounds if w == "eval" else max_dp
        for dtype in dtypes:
            shared, plain, ref = (t.out[w, dtype, "shared"], t.out.get((w, dtype, "plain")),
                                  t.out[w, "float32", "shared"])
            vps_s, vps_p = t.vps((w, dtype, "shared"), n), t.vps((w, dtype, "plain"), n)
            agree = "–" if w == "eval" or dtype == "float32" else \
                f"{sum((a > threshold) == (b > threshold) for a, b in zip(ref, shared)) / n:.3f}"
            rows.append([name, dtype_label(dtype), str(n), "–" if vps_p is None else f"{vps_p:.2f}", f"{vps_s:.2f}",
                         "–" if vps_p is None else f"{vps_s / vps_p:.2f}x",
                         "–" if plain is None else compare(plain, shared),
                         "–" if dtype == "float32" else compare(ref, shared), agree])
    return rows


COLUMNS = ("workload", "dtype", "verdicts", "plain verdicts/s", "shared-prefix verdicts/s", "speed-up",
           "shared vs plain", "vs float32 (shared)", "verdicts agree vs f32")


def show(rows: list[list[str]], markdown: bool, header: str) -> None:
    print(header + "\n")
    if markdown:  # a bar inside a cell ("max |ΔP(YES)|") would split it: escaped, as markdown reads it
        print("| " + " | ".join(c.replace("|", "\\|") for c in COLUMNS) + " |\n|"
              + "---|" * 2 + "---:|" * (len(COLUMNS) - 2))
        for line in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |")
        return
    widths = [max(len(c), *(len(line[i]) for line in rows)) for i, c in enumerate(COLUMNS)]
    for line in [list(COLUMNS)] + rows:
        print("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths))))


def target_note(t: Timings, requests: dict, model: str, dtypes: list[str]) -> str | None:
    """The CPU judge's verdicts/s on GRPO groups with the runtime dtype, against the target."""
    runtime = runtime_dtype("cpu", "auto")
    grpo = [w for w in requests if w != "eval"]
    if model != QWEN_CODER or runtime not in dtypes or not grpo:
        return None
    got = {w: t.vps((w, runtime, "shared"), len(requests[w])) for w in grpo}
    met = all(v >= TARGET_VPS for v in got.values())
    return (f"target ≥ {TARGET_VPS:g} shared-prefix verdict/s on GRPO groups with the runtime dtype ({runtime}): "
            + ", ".join(f"groups of {GROUP[w]} {v:.2f}" for w, v in got.items()) + (" — met" if met else " — not met"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--questions", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workloads", default="grpo4,grpo5,eval", help="comma-separated: grpo4, grpo5, eval "
                   "(a slow judge: grpo4,grpo5)")
    p.add_argument("--dtypes", default=None, help="e.g. float32,bfloat16 (default: float32 and the runtime choice)")
    p.add_argument("--no-plain", action="store_true", help="time only the shared-prefix path (halves the run)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--smoke", action="store_true", help=f"toy sizes {SMOKE} (seconds), every row; the CI check "
                   "that this script still runs (tests/test_bench.py)")
    args = p.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not workloads or not set(workloads) <= set(GROUP):
        p.error(f"--workloads {args.workloads!r}: comma-separated names from {', '.join(GROUP)}")
    if min(args.questions, args.repeats, args.batch_size) < 1:
        p.error("--questions, --repeats and --batch-size must be at least 1")
    dtypes, note = plan_dtypes(args.dtypes)
    paths = ["shared"] if args.no_plain else ["plain", "shared"]
    judges = build_judges(args.model, dtypes, paths, args.batch_size)
    try:
        t, requests = measure(judges, dtypes, paths, workloads, args.questions, args.repeats)
    finally:
        for judge in judges.values():
            judge.close()
    threshold = next(iter(judges.values())).config.threshold
    if args.smoke:
        print("SMOKE RUN (--smoke): toy sizes, the figures below are not measurements.\n")
    show_hardware(args.markdown)
    show(rows_of(t, requests, dtypes, threshold), args.markdown,
         f"{args.model} (threshold {threshold:g}), batch_size {args.batch_size}, median of {args.repeats} "
         f"interleaved runs")
    for line in filter(None, [note, target_note(t, requests, args.model, dtypes)]):
        print(f"- {line}")


if __name__ == "__main__":
    try:
        main()
    except MedixError as err:
        raise SystemExit(f"bench/judge_prefix.py: {err}") from None
