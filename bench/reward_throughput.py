#!/usr/bin/env python
"""Reward throughput: medix vs the original MediX-R1 call pattern, and vs the judge backend's own limit.

Run from the repository root with the venv active (MEDIX_CACHE reuses the converted judge model):

    python bench/reward_throughput.py                                     # full size, n=512 (minutes on 2 cores)
    python bench/reward_throughput.py --n 64 --original-n 16 --local-n 32 # quick run
    python bench/reward_throughput.py --markdown                          # tables as markdown, for docs/
    python bench/reward_throughput.py --smoke                             # every row at toy sizes (CI, seconds)

Everything is measured in one run; result tables go to stdout, diagnostics (logging) to stderr. The header
reports the CPU time OTHER processes used during the run: on a shared 2-core machine that inflates the figures.

(a) Composite reward on --n completions against a loopback simulated judge (`medix.testing.stub_server`
    in a separate process, fixed --latency, unbounded concurrency). ORIGINAL pattern: per completion, in
    sequence, one blocking judge request (sync `openai.OpenAI`) and one embed call of (predicted, reference);
    timed on the first --original-n completions and scaled to --n. medix: `CompositeReward.score` on all
    --n (exact matches are settled by a guard and never reach the judge). Target: speed-up >= 50x.
(b) `Judge.judge` vs a direct load test of the same backend on the same distinct prompts.
    openai (simulated server): `AsyncOpenAI` + `asyncio.gather`, all --n at once, vs Judge with
    max_concurrency=512. local: `LocalBackend.p_yes` vs Judge(backend="local") on --local-n prompts.
    Target: medix reaches >= 90% of the direct throughput.
(c) local judge: verdict from one batched forward pass (`LocalBackend.p_yes`, the run timed in (b)) vs
    generating the verdict text with the same model (`generate`, greedy, K=--max-new-tokens) then
    `parse_verdict`; same prompts, batch size 16, length-sorted batches, left padding. Target: logits >= 5x faster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections import namedtuple
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

from medix.judge.config import JudgeConfig
from medix.rewards.config import RewardConfig
from medix.judge import Judge, JudgeRequest
from medix.judge.parse import parse_verdict
from medix.testing.stub_server import free_port

from hardware import cpuinfo  # bench/hardware.py (this script's folder is first on sys.path)

log = logging.getLogger("bench.reward_throughput")
# Real VQA-RAD rows when the benchmark mirrors sit next to the repo (or MEDIX_BENCHMARKS points at them);
# otherwise a small built-in list of medical Q/A pairs is used.
DEFAULT_DATA = Path(os.environ.get("MEDIX_BENCHMARKS", Path(__file__).resolve().parents[2] / "shared" / "benchmarks")) \
    / "rad_vqa" / "test.jsonl"
JUDGE_DEFAULTS = JudgeConfig()  # temperature / max_tokens that every client here sends, as medix does

# Used when --data is absent: radiology Q/A pairs, cycled (with a "case k:" prefix) up to --n.
FALLBACK_QA = [
    ("what abnormality is seen in the left lung?", "pneumothorax"), ("is there a pleural effusion?", "yes"),
    ("where is the mass located?", "right upper lobe"), ("is the heart enlarged?", "no"),
    ("what imaging modality was used?", "ct"), ("what is the most likely diagnosis?", "appendicitis"),
    ("which organ is abnormal?", "liver"), ("is there free air under the diaphragm?", "yes"),
    ("what does the hyperdense area represent?", "acute hemorrhage"), ("is this a sagittal plane?", "no"),
    ("what is the lesion in the brain?", "ring-enhancing lesion"), ("what is seen in the kidney?", "renal cyst"),
    ("what type of fracture is present?", "spiral fracture"), ("is the trachea midline?", "yes"),
    ("what is the opacity in the lower lobe?", "consolidation"), ("is there a pneumothorax?", "no"),
]
PARAPHRASES = ("the finding is {}", "{}, based on the image", "most likely {}", "consistent with {}",
               "{} is seen on this study")
WRONG = ("the finding is {}", "most likely {}", "{}, based on the image")
CLOSED = {"yes": ("yes, it is present", "yes, this is seen on the image"),
          "no": ("no, it is not seen", "no, this is absent")}


@dataclass(frozen=True)
class Sample:
    question: str
    reference: str
    answer: str
    kind: str  # exact | paraphrase | wrong (the mix is logged)

    @property
    def request(self) -> JudgeRequest:
        return JudgeRequest(candidate=self.answer, reference=self.reference, question=self.question)


def load_pairs(path: Path | None) -> tuple[list[tuple[str, str]], str]:
    """Distinct (question, answer) pairs from a JSONL file, or the built-in list when it is absent."""
    if path is None or not path.is_file():
        log.warning("data file %s not found; using %d built-in Q/A pairs", path, len(FALLBACK_QA))
        return list(FALLBACK_QA), "built-in list"
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    pairs = [(str(r["question"]).strip(), str(r["answer"]).strip()) for r in rows if str(r.get("answer", "")).strip()]
    return list(dict.fromkeys(pairs)), str(path)


def make_answer(kind: str, reference: str, open_answers: list[str], rng: random.Random) -> str:
    low = reference.lower().rstrip(".")
    if kind == "exact":
        return reference
    if low in CLOSED:  # a bare "no" against "yes" is settled by the verdict-word guard, so phrase it out
        return rng.choice(CLOSED[{"yes": "no", "no": "yes"}[low] if kind == "wrong" else low])
    if kind == "paraphrase":
        return rng.choice(PARAPHRASES).format(reference)
    other = rng.choice([a for a in open_answers if a.lower().rstrip(".") != low] or ["no acute finding"])
    return rng.choice(WRONG).format(other)


def build_samples(pairs: list[tuple[str, str]], n: int, seed: int) -> list[Sample]:
    """~30% exact reference, ~45% paraphrase, ~25% wrong answer; every (question, reference) is distinct."""
    rng = random.Random(seed)
    open_answers = sorted({a for _, a in pairs if a.lower().rstrip(".") not in CLOSED}) or ["no acute finding"]
    samples, seen = [], set()
    for i in range(n):
        question, reference = pairs[i % len(pairs)]
        if i >= len(pairs):
            question = f"case {i // len(pairs) + 1}: {question}"
        roll = rng.random()
        kind = "exact" if roll < 0.30 else "paraphrase" if roll < 0.75 else "wrong"
        answer = make_answer(kind, reference, open_answers, rng)
        # The judge prompt holds the reference and the answer only (not the question): a repeated pair would be
        # deduplicated by Judge and flatter medix, so it is made distinct by its reference (and the exact answer).
        if (reference, answer) in seen:
            reference = f"{reference} (case {i})"
            answer = reference if kind == "exact" else answer
        seen.add((reference, answer))
        samples.append(Sample(question, reference, answer, kind))
    return samples


@contextmanager
def judge_server(latency: float):
    """The stub judge in its own process, so serving never competes with the clients for our GIL."""
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "medix.testing.stub_server", "--port", str(port),
                             "--latency", str(latency)])
    try:
        for _ in range(600):  # up to ~60 s
            if proc.poll() is not None:
                raise RuntimeError(f"judge server exited with code {proc.returncode}")
            try:
                if httpx.get(f"{root}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("judge server did not answer /v1/models within 60 s")
        log.info("judge server pid %d on %s, latency %.3f s", proc.pid, root, latency)
        yield root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def openai_judge_config(root: str) -> JudgeConfig:
    return JudgeConfig(backend="openai", base_urls=[f"{root}/v1"], model="stub", cache=False, max_concurrency=512)


def chat_args(prompt: str) -> dict:
    return dict(model="stub", messages=[{"role": "user", "content": prompt}],
                temperature=JUDGE_DEFAULTS.temperature, max_tokens=JUDGE_DEFAULTS.max_tokens)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def interleave(direct, medix, repeats: int) -> tuple[list[float], list[float], object, object]:
    """Run both sides `repeats` times, alternating who goes first so neither gains from warm caches."""
    times, last = {"direct": [], "medix": []}, {}
    for i in range(repeats):
        for side in ("direct", "medix") if i % 2 == 0 else ("medix", "direct"):
            seconds, last[side] = timed(direct if side == "direct" else medix)
            times[side].append(seconds)
    return times["direct"], times["medix"], last["direct"], last["medix"]


def run_original(root: str, samples: list[Sample], render) -> float:
    """The original loop: one blocking judge request, then one embed call, per completion."""
    from medix.models import load_embedder

    embedder = load_embedder("all-minilm-l6-v2")
    client = openai.OpenAI(base_url=f"{root}/v1", api_key="EMPTY", max_retries=0, timeout=60)

    def loop(batch: list[Sample]) -> None:
        for s in batch:
            response = client.chat.completions.create(**chat_args(render(s.request)))
            parse_verdict(response.choices[0].message.content)
            # No progress bar: drawing it would charge the original for something medix skips.
            vectors = embedder.encode([s.answer, s.reference], normalize_embeddings=True, show_progress_bar=False)
            float(vectors[0] @ vectors[1])

    try:
        loop(samples[:1])  # warm-up outside the clock: model weights, the HTTP connection
        return timed(loop, samples)[0]
    finally:
        client.close()


def run_composite(root: str, samples: list[Sample], repeats: int) -> dict:
    """medix CompositeReward.score on all samples; judge requests counted by the server itself."""
    from medix.rewards import CompositeReward

    reward = CompositeReward(RewardConfig(judge=openai_judge_config(root)))
    responses = [f"<X_RAY> <think>The question asks: {s.question} I compare the visible findings.</think> "
                 f"<answer>{s.answer}</answer>" for s in samples]
    solutions = [f"<X_RAY> {s.reference}" for s in samples]
    problems = [s.question for s in samples]  # so medix sends the same prompts as the original loop
    times, judged = [], []
    server_requests = lambda: httpx.get(f"{root}/stats", timeout=5).json()["requests"]  # noqa: E731
    try:
        reward.score(responses[:8], solutions[:8], problems[:8])  # warm-up: embedder load, connections
        for _ in range(repeats):
            before = server_requests()
            seconds, results = timed(reward.score, responses, solutions, problems)
            times.append(seconds)
            judged.append(server_requests() - before)
    finally:
        reward.close()
    return {"times": times, "judged": judged, "errors": sum(r.judge_error is not None for r in results),
            "exact": sum(r.guard == "exact_match" for r in results)}


async def direct_burst(client: openai.AsyncOpenAI, prompts: list[str]) -> int:
    """All prompts at once, no client-side limit; returns how many failed or were unparsable."""
    out = await asyncio.gather(*(client.chat.completions.create(**chat_args(p)) for p in prompts),
                               return_exceptions=True)
    return sum(isinstance(r, BaseException) or parse_verdict(r.choices[0].message.content) is None for r in out)


def run_judge_openai(root: str, samples: list[Sample], repeats: int) -> dict:
    """Direct AsyncOpenAI load test vs Judge.judge on the same distinct prompts, interleaved."""
    judge = Judge(openai_judge_config(root))
    requests = [s.request for s in samples]
    prompts = [judge.render(r) for r in requests]
    if len(set(prompts)) != len(prompts):
        raise RuntimeError("judge prompts are not distinct; Judge would deduplicate them")
    loop = asyncio.new_event_loop()  # one loop for every burst: the client's connections belong to it
    client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="EMPTY", max_retries=0, timeout=60)
    try:
        loop.run_until_complete(direct_burst(client, prompts[:16]))  # warm-up both sides
        judge.judge(requests[:16])
        direct, medix, direct_failed, verdicts = interleave(
            lambda: loop.run_until_complete(direct_burst(client, prompts)), lambda: judge.judge(requests), repeats)
    finally:
        loop.run_until_complete(client.close())
        loop.close()
        judge.close()
    return {"direct": direct, "medix": medix, "errors": (direct_failed, sum(not v.ok for v in verdicts))}


def generate_verdicts(backend, prompts: list[str], k: int) -> tuple[list[str], int]:
    """Verdict TEXT by greedy generation, in batches built exactly as LocalBackend.p_yes builds them."""
    import torch

    model, tokenizer = backend.model, backend.tokenizer  # the very model object p_yes runs
    texts = backend.render([[{"role": "user", "content": p}] for p in prompts])  # p_yes's chat text
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # p_yes's length bucketing
    out, size, steps = [""] * len(texts), backend.config.batch_size, 0
    with torch.inference_mode():
        for start in range(0, len(order), size):
            idx = order[start:start + size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, padding_side="left",
                            truncation=True, max_length=backend.config.max_input_tokens).to(model.device)
            generated = model.generate(**enc, max_new_tokens=k, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            new = generated[:, enc["input_ids"].shape[1]:]
            steps += new.shape[1]
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
                out[i] = text
    return out, steps


def run_local(samples: list[Sample], k: int, repeats: int, model: str | None = None) -> dict:
    """(b) p_yes vs Judge(local), interleaved, and (c) p_yes vs generate + parse_verdict, same prompts.
    `model`: the local judge (None: medix's default judge, as `medix demo` uses it)."""
    from medix.judge.local_backend import LocalBackend

    config = JudgeConfig(backend="local", cache=False, **({"model": model} if model else {}))
    backend, judge = LocalBackend(config), Judge(config)  # Judge builds its own backend over the same cached model
    requests = [s.request for s in samples]
    prompts = [judge.render(r) for r in requests]
    try:
        # Warm-up outside the clock on the longest batch, so the first timed run pays no allocator growth.
        longest = sorted(prompts, key=len)[-config.batch_size:]
        backend.p_yes(longest)
        generate_verdicts(backend, longest, 2)
        t_logits, t_judge, probs, verdicts = interleave(lambda: backend.p_yes(prompts), lambda: judge.judge(requests),
                                                        repeats)
        t_generate, (texts, steps) = timed(generate_verdicts, backend, prompts, k)
    finally:
        judge.close()
    parsed = [parse_verdict(t) for t in texts]  # microseconds; not worth a separate clock
    logit_verdicts = [1.0 if p > config.threshold else 0.0 for p in probs]  # as Judge.decide reads P(YES)
    both = [(a, b) for a, b in zip(logit_verdicts, parsed) if b is not None]
    log.info("first generated verdict texts: %s", texts[:3])
    # Best of the runs: on a shared 2-core machine noise only ever adds time to a CPU-bound run.
    return {"model": f"{config.model} ({backend.dtype}), threshold {config.threshold}",
            "batch_size": config.batch_size, "threshold": config.threshold, "t_logits": min(t_logits),
            "t_judge": min(t_judge), "t_generate": t_generate,
            "runs": (t_logits, t_judge), "steps": steps, "batches": -(-len(prompts) // config.batch_size),
            "unparsable": sum(p is None for p in parsed), "agree": sum(a == b for a, b in both),
            "comparable": len(both),
            "judge_errors": sum(not v.ok for v in verdicts),
            "judge_same": sum(v.score == lv for v, lv in zip(verdicts, logit_verdicts))}


# --smoke: every code path of the full run at toy sizes (one local batch, two decode steps, 10 ms judge).
SMOKE = {"n": 8, "original_n": 2, "local_n": 4, "latency": 0.01, "max_new_tokens": 2, "repeats": 1,
         "local_repeats": 1}
Table = namedtuple("Table", "title headers rows notes")  # rows: lists of str; notes: lines printed under it


def show(tables: list[Table], markdown: bool) -> None:
    if markdown:
        for t in tables:
            print(f"### {t.title}\n\n| " + " | ".join(t.headers) + " |\n|" + "---|" * len(t.headers))
            print("\n".join("| " + " | ".join(row) + " |" for row in t.rows) + "\n")
            print("\n".join(f"- {note}" for note in t.notes) + "\n")
        return
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(width=None if sys.stdout.isatty() else 160)  # piped: rich would wrap at 80 columns
    for t in tables:
        table = RichTable(*t.headers, title=t.title, title_justify="left")
        for row in t.rows:
            table.add_row(*row)
        console.print(table)
        for note in t.notes:
            console.print(f"  {note}", markup=False, highlight=False)
        console.print()


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU-s of the whole machine, CPU-s of this process and its reaped children): their difference
    over a window is what OTHER processes used, so a noisy neighbour on a shared machine shows in the output."""
    ticks = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]  # incl. steal, no guest
    own = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), own[0] + own[1] + own[2] + own[3]


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def table_a(args, original_s: float, original_n: int, comp: dict) -> Table:
    n, scaled, medix_s = args.n, original_s / original_n * args.n, statistics.median(comp["times"])
    note = f"measured on {original_n}, scaled to {n}" if original_n != n else f"measured on {n}"
    rows = [["original: sequential sync judge request + embed call", str(n), str(n), f"{scaled:.2f}",
             f"{n / scaled:.1f}", note],
            ["medix: CompositeReward.score", str(n), f"{statistics.median(comp['judged']):.0f}", f"{medix_s:.2f}",
             f"{n / medix_s:.1f}",
             f"median of {len(comp['times'])} runs: " + ", ".join(f"{t:.2f}" for t in comp["times"])]]
    notes = [f"Speed-up: {scaled / medix_s:.1f}x (target >= 50x: {met(scaled / medix_s >= 50)}).",
             f"medix: {comp['exact']} of {n} completions are exact matches settled by the guard (no judge request, no "
             f"embedding); judge requests counted on the server: {comp['judged']}; judge errors: {comp['errors']}. "
             "The original pattern judges and embeds every completion.",
             f"Simulated judge: {args.latency} s fixed latency, unbounded concurrency, separate process."]
    return Table("(a) Composite reward: original call pattern vs medix", ["Pattern", "Completions", "Judge requests",
                 "Seconds", "Completions/s", "Note"], rows, notes)


def table_b(args, jo: dict, loc: dict) -> Table:
    direct, medix = statistics.median(jo["direct"]), statistics.median(jo["medix"])
    checks = [f"simulated {direct / medix:.0%} ({met(direct / medix >= 0.9)})"]
    rows = [[f"simulated server, {args.latency} s", "direct: AsyncOpenAI + gather", str(args.n), f"{direct:.3f}",
             f"{args.n / direct:.1f}", "", str(jo["errors"][0])],
            ["", "medix: Judge.judge, max_concurrency=512", str(args.n), f"{medix:.3f}", f"{args.n / medix:.1f}",
             f"{direct / medix:.0%}", str(jo["errors"][1])]]
    m, direct, medix = args.local_n, loc["t_logits"], loc["t_judge"]
    checks.append(f"local {direct / medix:.0%} ({met(direct / medix >= 0.9)})")
    rows += [[f"local {loc['model']}, CPU", "direct: LocalBackend.p_yes", str(m), f"{direct:.2f}", f"{m / direct:.2f}",
              "", "0"],
             ["", "medix: Judge.judge, backend=local", str(m), f"{medix:.2f}", f"{m / medix:.2f}",
              f"{direct / medix:.0%}", str(loc["judge_errors"])]]
    notes = [f"medix throughput as a share of direct (target >= 90%): {'; '.join(checks)}.",
             "All prompts are distinct: Judge deduplicates identical prompts, which would flatter medix.",
             f"Simulated server: median of {args.repeats} runs per side; local: best of "
             f"{args.local_repeats} per side (p_yes {', '.join(f'{t:.2f}' for t in loc['runs'][0])}; Judge "
             f"{', '.join(f'{t:.2f}' for t in loc['runs'][1])}); the two sides alternate who goes first.",
             f"Judge(local) verdicts equal p_yes > threshold ({loc['threshold']}) on {loc['judge_same']} of {m}."]
    return Table("(b) medix Judge vs the backend's own saturated throughput", ["Backend", "Client", "Requests",
                 "Seconds", "Requests/s", "medix / direct", "Errors"], rows, notes)


def table_c(args, loc: dict) -> Table:
    m, k, ratio = args.local_n, args.max_new_tokens, loc["t_generate"] / loc["t_logits"]
    rows = [["logits: one batched forward pass (LocalBackend.p_yes)", str(m), "-", f"{loc['t_logits']:.2f}",
             f"{m / loc['t_logits']:.2f}", "1.00x"],
            [f"generate verdict text (greedy, K={k}) + parse_verdict", str(m), str(k), f"{loc['t_generate']:.2f}",
             f"{m / loc['t_generate']:.2f}", f"{ratio:.2f}x"]]
    notes = [f"Generation takes {ratio:.2f}x the time of the logit verdict (target >= 5x: {met(ratio >= 5)}).",
             f"Same model ({loc['model']} on CPU), prompts, batch size {loc['batch_size']}, length-sorted batches, "
             "left padding; the logits "
             f"row is the best p_yes run of table (b); generation ran once. Decode steps: {loc['steps']} over "
             f"{loc['batches']} batches "
             "(a batch stops early once every row has emitted EOS).",
             f"Generated text unparsable by parse_verdict: {loc['unparsable']} of {m}; where parsable, it agrees with "
             f"the logit verdict on {loc['agree']} of {loc['comparable']}."]
    return Table("(c) Local judge: logit verdict vs generated verdict text", ["Method", "Items", "K (max new tokens)",
                 "Seconds", "Items/s", "Time vs logits"], rows, notes)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=512, help="completions / judge requests for (a) and (b)")
    p.add_argument("--original-n", type=int, default=64, help="completions the original pattern is timed on")
    p.add_argument("--local-n", type=int, default=128, help="prompts for the CPU-bound local judge, (b) and (c)")
    p.add_argument("--latency", type=float, default=0.2, help="simulated judge latency in seconds")
    p.add_argument("--max-new-tokens", type=int, default=16, help="K: tokens generated per verdict text in (c)")
    p.add_argument("--repeats", type=int, default=3, help="runs per side against the simulated server (median)")
    p.add_argument("--local-repeats", type=int, default=2, help="runs per side for the local judge (best)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSONL with question and answer columns")
    p.add_argument("--judge-model", default=None, help="the local judge of (b) and (c); default: medix's default "
                   "judge (the CPU judge where its parts are installed, else smollm2-135m)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    p.add_argument("--smoke", action="store_true", help=f"toy sizes {SMOKE} (seconds): every row runs, the "
                   "figures mean nothing; the CI check that this script still runs (tests/test_bench.py)")
    args = p.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    # Libraries stay at WARNING (httpx logs every request at INFO); this script's progress at INFO.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    pairs, source = load_pairs(args.data)
    samples = build_samples(pairs, max(args.n, args.local_n), args.seed)
    kinds = {k: sum(s.kind == k for s in samples[:args.n]) for k in ("exact", "paraphrase", "wrong")}
    log.info("%d distinct Q/A pairs from %s; answers %s", len(pairs), source, kinds)
    original_n = min(args.original_n, args.n)
    marks = [("start", time.monotonic(), *cpu_seconds())]
    with judge_server(args.latency) as root:
        log.info("(a) original pattern on %d completions", original_n)
        with Judge(openai_judge_config(root)) as renderer:  # for its prompt template only
            original_s = run_original(root, samples[:original_n], renderer.render)
        log.info("(a) medix CompositeReward on %d completions", args.n)
        composite = run_composite(root, samples[:args.n], args.repeats)
        log.info("(b) direct load test vs Judge on %d prompts", args.n)
        jo = run_judge_openai(root, samples[:args.n], args.repeats)
    marks.append(("(a) and simulated-server (b)", time.monotonic(), *cpu_seconds()))  # server reaped: its CPU is ours
    log.info("(b, c) local judge on %d prompts", args.local_n)  # after the server is gone: nothing else on the CPU
    loc = run_local(samples[:args.local_n], args.max_new_tokens, args.local_repeats, args.judge_model)
    marks.append(("local (b) and (c)", time.monotonic(), *cpu_seconds()))
    foreign = "; ".join(f"{b[0]}: {(b[2] - a[2]) - (b[3] - a[3]):.1f} CPU-s in {b[1] - a[1]:.0f} s"
                        for a, b in zip(marks, marks[1:]))
    tables = [table_a(args, original_s, original_n, composite), table_b(args, jo, loc), table_c(args, loc)]
    # On 2 cores one busy neighbour stalls torch's thread pool and the event loops: say so next to the figures.
    if args.smoke:
        print("SMOKE RUN (--smoke): toy sizes, the figures below are not measurements.\n")
    print(f"n={args.n}; data: {source}; {os.cpu_count()} CPUs ({cpuinfo()[0]}); Python {platform.python_version()}\n"
          f"CPU used by other processes during the run ({foreign}); well above 0 means that window's timings are "
          "inflated.\n")
    show(tables, args.markdown)


if __name__ == "__main__":
    main()
