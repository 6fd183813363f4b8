"""Shared-prefix judging vs today's batched forward, side by side, on the local (logit) judge.

    python bench/judge_prefix.py                          # SmolLM2-135M, 8 questions x 5 answers, 3 repeats
    python bench/judge_prefix.py --model qwen2.5-coder-1.5b --questions 4 --repeats 2 --workloads grpo
    python bench/judge_prefix.py --smoke         # 1 question x 5 answers, 1 run: every row (CI, seconds)

Workloads, built from real MedQA items (benchmark mirrors beside the repo, else the bundled sample set):
  GRPO groups    one-turn verdicts, each question + reference judged against 5 answers (the options and a
                 rephrased correct answer), as a GRPO group of n = 5 is judged in training;
  3-round eval   the evaluation conversation (paper protocol) on the same pairs, three rounds.
Both paths run the same prompts in the same process, interleaved over `--repeats` runs (the machine is
noisy: compare the ratio, not the absolute figures). P(YES) of the two paths is compared too.
Speed is never asserted in tests; the table goes to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from medix.config import JudgeConfig
from medix.judge import Judge, JudgeRequest
from medix.judge.local_backend import LocalBackend

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "benchmarks" / "medqa" / "test.jsonl"
SAMPLE = REPO / "src" / "medix" / "eval" / "sample" / "medqa" / "test.jsonl"
# --smoke: both workloads at toy sizes (one GRPO group of 5, one interleaved run each).
SMOKE = {"model": "smollm2-135m", "questions": 1, "repeats": 1, "workloads": "grpo,eval"}


def groups(n_questions: int) -> list[JudgeRequest]:
    source = MIRROR if MIRROR.is_file() else SAMPLE
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()][:n_questions]
    requests = []
    for row in rows:
        options = [row[f"ending{i}"] for i in range(4)]
        reference = options[row["label"]]
        answers = options + [f"The answer is {reference[0].lower() + reference[1:]}."]  # a group of 5
        requests += [JudgeRequest(candidate=a, reference=reference, question=row["sent1"]) for a in answers]
    return requests


def timed(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times, out


def run(model: str, n_questions: int, repeats: int, batch_size: int,
        workloads: tuple[str, ...] = ("grpo", "eval")) -> list[dict]:
    requests = groups(n_questions)
    plain_cfg = JudgeConfig(model=model, shared_prefix=False, batch_size=batch_size, cache=False)
    shared_cfg = plain_cfg.model_copy(update={"shared_prefix": True})
    plain, shared = Judge(plain_cfg, backend=LocalBackend(plain_cfg)), Judge(shared_cfg, backend=LocalBackend(shared_cfg))
    prompts = [plain.render(r) for r in requests]
    rows = []
    try:
        plain.backend.p_yes(prompts[:batch_size])  # warm-up outside the clock
        shared.backend.p_yes(prompts[:batch_size])
        t_plain, t_shared, p_plain, p_shared = [], [], None, None
        for _ in range(repeats if "grpo" in workloads else 0):  # interleaved, so both paths see the same machine state
            t, p_plain = timed(lambda: plain.backend.p_yes(prompts), 1)
            t_plain += t
            t, p_shared = timed(lambda: shared.backend.p_yes(prompts), 1)
            t_shared += t
        diff = max(abs(a - b) for a, b in zip(p_plain, p_shared)) if p_plain else None
        rows += [] if diff is None else [{"workload": f"GRPO groups ({n_questions} x 5, one-turn)", "verdicts": len(prompts),
                     "plain_vps": len(prompts) / statistics.median(t_plain),
                     "shared_vps": len(prompts) / statistics.median(t_shared), "max_dp": diff}]
        c_plain, c_shared = [], []
        if "eval" not in workloads:
            return rows
        for _ in range(repeats):
            t, v_plain = timed(lambda: plain.converse(requests, 3, protocol="paper"), 1)
            c_plain += t
            t, v_shared = timed(lambda: shared.converse(requests, 3, protocol="paper"), 1)
            c_shared += t
        same = sum(a.rounds == b.rounds for a, b in zip(v_plain, v_shared))
        rows.append({"workload": f"3-round eval ({len(requests)} conversations)", "verdicts": len(requests),
                     "plain_vps": len(requests) / statistics.median(c_plain),
                     "shared_vps": len(requests) / statistics.median(c_shared),
                     "max_dp": f"{same}/{len(requests)} identical rounds"})
    finally:
        plain.close()
        shared.close()
    return rows


def show(rows: list[dict], markdown: bool, header: str) -> None:
    cols = ("workload", "verdicts", "plain verdicts/s", "shared-prefix verdicts/s", "speed-up", "agreement")
    lines = [[r["workload"], str(r["verdicts"]), f"{r['plain_vps']:.2f}", f"{r['shared_vps']:.2f}",
              f"{r['shared_vps'] / r['plain_vps']:.2f}x",
              r["max_dp"] if isinstance(r["max_dp"], str) else f"max |ΔP(YES)| {r['max_dp']:.1e}"] for r in rows]
    print(header)
    if markdown:
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for line in lines:  # a bar inside a cell ("max |ΔP(YES)|") would split it: escaped, as markdown reads it
            print("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |")
        return
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for line in lines:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--questions", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workloads", default="grpo,eval", help="grpo, eval or both (a slow judge: grpo only)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--smoke", action="store_true", help=f"toy sizes {SMOKE} (seconds), every row; the CI check "
                   "that this script still runs (tests/test_bench.py)")
    args = p.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
        print("SMOKE RUN (--smoke): toy sizes, the figures below are not measurements.\n")
    rows = run(args.model, args.questions, args.repeats, args.batch_size, tuple(args.workloads.split(",")))
    show(rows, args.markdown, f"{args.model}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
                              f"batch_size {args.batch_size}, median of {args.repeats} interleaved runs")


if __name__ == "__main__":
    main()
