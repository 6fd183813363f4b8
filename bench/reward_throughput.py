#!/usr/bin/env python
"""Reward throughput: medix vs the original MediX-R1 call pattern, and vs the judge backend's own limit.

Run from the repository root with the venv active (MEDIX_CACHE reuses the converted judge model):

    python bench/reward_throughput.py                                    # full size, n=512 (minutes on 2 CPU cores)
    python bench/reward_throughput.py --n 64 --original-n 16 --local-n 32 # quick run
    python bench/reward_throughput.py --markdown                         # tables as markdown for docs/

Everything is measured in one run; result tables go to stdout, diagnostics (logging) to stderr.

(a) Composite reward on --n completions against a loopback simulated judge (`medix.testing.judge_server`
    in a separate process, fixed --latency, unbounded concurrency). ORIGINAL pattern: per completion, in
    sequence, one blocking judge request (sync `openai.OpenAI`) and one embed call of (predicted, reference);
    measured on the first --original-n completions and scaled to --n. medix: `CompositeReward.score` on all
    --n (exact matches are decided by a guard and never reach the judge). Target: speed-up >= 50x.
(b) `Judge.judge` vs a direct load test of the same backend on the same --n distinct prompts.
    openai: `AsyncOpenAI` + `asyncio.gather` (all at once) vs Judge (max_concurrency=512).
    local: `LocalBackend.p_yes` vs Judge (backend="local") on --local-n prompts.
    Target: medix reaches >= 90% of the direct throughput.
(c) local judge verdict from one batched forward pass (`LocalBackend.p_yes`, timed in (b)) vs generating the
    verdict text with the same model (`generate`, greedy, K=--max-new-tokens) and `parse_verdict`; same
    prompts, same batch size (16), same length-sorted batches, left padding. Target: logits >= 5x faster.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

from medix.config import JudgeConfig, RewardConfig
from medix.judge import Judge, JudgeRequest
from medix.judge.parse import parse_verdict
from medix.testing.judge_server import free_port

log = logging.getLogger("bench.reward_throughput")
DEFAULT_DATA = Path("/work/shared/benchmarks/rad_vqa/test.jsonl")
JUDGE_DEFAULTS = JudgeConfig()  # the same temperature / max_tokens for every client in this file

# Used when --data is absent: a few radiology Q/A pairs, cycled (with a "case k:" prefix) up to --n.
FALLBACK_QA = [
    ("what abnormality is seen in the left lung?", "pneumothorax"), ("is there a pleural effusion?", "yes"),
    ("where is the mass located?", "right upper lobe"), ("is the heart enlarged?", "no"),
    ("what imaging modality was used?", "ct"), ("what is the most likely diagnosis?", "appendicitis"),
    ("which organ is abnormal?", "liver"), ("is there free air under the diaphragm?", "yes"),
    ("what does the hyperdense area represent?", "acute hemorrhage"), ("is this a sagittal plane?", "no"),
    ("what is the lesion in the brain?", "ring-enhancing lesion"), ("what is seen in the kidney?", "renal cyst"),
    ("what type of fracture is present?", "spiral fracture"), ("is the trachea midline?", "yes"),
    ("what abnormality is in the colon?", "diverticulosis"), ("what is enlarged?", "spleen"),
    ("where is the infarct?", "left middle cerebral artery territory"), ("is there a pneumothorax?", "no"),
    ("what is the opacity in the lower lobe?", "consolidation"), ("what vessel is dilated?", "abdominal aorta"),
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
    kind: str  # exact | paraphrase | wrong

    @property
    def completion(self) -> str:
        return f"<X_RAY> <think>The question asks: {self.question} I compare the visible findings.</think> " \
               f"<answer>{self.answer}</answer>"

    @property
    def solution(self) -> str:
        return f"<X_RAY> {self.reference}"

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
    if low in CLOSED:  # a bare "no" against "yes" would be caught by the verdict-word guard, not judged
        flipped = {"yes": "no", "no": "yes"}[low] if kind == "wrong" else low
        return rng.choice(CLOSED[flipped])
    if kind == "paraphrase":
        return rng.choice(PARAPHRASES).format(reference)
    other = rng.choice(open_answers)
    while other.lower() == low and len(open_answers) > 1:
        other = rng.choice(open_answers)
    return rng.choice(WRONG).format(other)


def build_samples(pairs: list[tuple[str, str]], n: int, seed: int) -> list[Sample]:
    """~30% exact reference, ~45% paraphrase, ~25% wrong answer; every (question, reference) is distinct."""
    rng = random.Random(seed)
    open_answers = sorted({a for _, a in pairs if a.lower().rstrip(".") not in CLOSED}) or ["no acute finding"]
    samples = []
    for i in range(n):
        question, reference = pairs[i % len(pairs)]
        cycle = i // len(pairs)
        if cycle:  # cycling must still give distinct judge prompts, or Judge's dedup would flatter medix
            question = f"case {cycle + 1}: {question}"
        roll = rng.random()
        kind = "exact" if roll < 0.30 else "paraphrase" if roll < 0.75 else "wrong"
        samples.append(Sample(question, reference, make_answer(kind, reference, open_answers, rng), kind))
    return samples


@contextmanager
def judge_server(latency: float):
    """The stub judge in its own process, so serving it never competes with the client for our GIL."""
    port = free_port()
    cmd = [sys.executable, "-m", "medix.testing.judge_server", "--port", str(port), "--latency", str(latency)]
    proc = subprocess.Popen(cmd)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"judge server exited with code {proc.returncode}")
            try:
                if httpx.get(f"{root}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("judge server did not answer /v1/models within 60 s")
            time.sleep(0.1)
        log.info("judge server pid %d on %s (latency %.3f s)", proc.pid, root, latency)
        yield root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_requests(root: str) -> int:
    return httpx.get(f"{root}/stats", timeout=5).json()["requests"]


def openai_judge_config(root: str) -> JudgeConfig:
    return JudgeConfig(backend="openai", base_urls=[f"{root}/v1"], model="stub", cache=False, max_concurrency=512)


def chat_args(prompt: str) -> dict:
    return dict(model="stub", messages=[{"role": "user", "content": prompt}],
                temperature=JUDGE_DEFAULTS.temperature, max_tokens=JUDGE_DEFAULTS.max_tokens)


def run_original(root: str, samples: list[Sample], render) -> float:
    """The original loop: one blocking judge request, then one embed call, per completion."""
    from medix.models import load_embedder

    embedder = load_embedder("all-minilm-l6-v2")
    client = openai.OpenAI(base_url=f"{root}/v1", api_key="EMPTY", max_retries=0, timeout=60)
    try:
        # Warm-up outside the clock: model weights, the HTTP connection.
        client.chat.completions.create(**chat_args(render(samples[0].request)))
        embedder.encode(["warm", "up"], normalize_embeddings=True, show_progress_bar=False)
        start = time.perf_counter()
        for s in samples:
            response = client.chat.completions.create(**chat_args(render(s.request)))
            parse_verdict(response.choices[0].message.content)
            # No progress bar: drawing it would charge the original pattern for something medix skips.
            vectors = embedder.encode([s.answer, s.reference], normalize_embeddings=True, show_progress_bar=False)
            float(vectors[0] @ vectors[1])
        return time.perf_counter() - start
    finally:
        client.close()


def run_composite(root: str, samples: list[Sample], repeats: int) -> dict:
    """medix CompositeReward.score on all samples; judge calls counted on the server."""
    from medix.rewards import CompositeReward

    reward = CompositeReward(RewardConfig(judge=openai_judge_config(root)))
    responses, solutions = [s.completion for s in samples], [s.solution for s in samples]
    problems = [s.question for s in samples]  # the same prompts the original loop sends
    try:
        reward.score(responses[:8], solutions[:8], problems[:8])  # warm-up: embedder load, connections
        times, judged = [], []
        for _ in range(repeats):
            before = server_requests(root)
            start = time.perf_counter()
            results = reward.score(responses, solutions, problems)
            times.append(time.perf_counter() - start)
            judged.append(server_requests(root) - before)
    finally:
        reward.close()
    return {"times": times, "judged": judged, "errors": sum(r.judge_error is not None for r in results),
            "exact": sum(r.guard == "exact_match" for r in results)}


async def direct_burst(client: openai.AsyncOpenAI, prompts: list[str]) -> int:
    """All prompts at once, no client-side limit; returns the number of failed or unparsable answers."""
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
    times = {"direct": [], "medix": []}
    errors = {"direct": 0, "medix": 0}
    try:
        loop.run_until_complete(direct_burst(client, prompts[:16]))  # warm-up both sides
        judge.judge(requests[:16])
        for i in range(repeats):
            for side in ("direct", "medix") if i % 2 == 0 else ("medix", "direct"):  # alternate: no order bias
                start = time.perf_counter()
                if side == "direct":
                    errors[side] += loop.run_until_complete(direct_burst(client, prompts))
                else:
                    errors[side] += sum(not v.ok for v in judge.judge(requests))
                times[side].append(time.perf_counter() - start)
    finally:
        loop.run_until_complete(client.close())
        loop.close()
        judge.close()
    return {"times": times, "errors": errors}


def generate_verdicts(backend, prompts: list[str], k: int) -> tuple[list[str], int]:
    """Verdict TEXT by greedy generation; batches built exactly as LocalBackend.p_yes builds them."""
    import torch

    from medix.models import load_causal_lm

    model, tokenizer = load_causal_lm("smollm2-135m")  # lru_cache: the very model object the backend uses
    texts = [backend.render(p) for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # same length bucketing as p_yes
    out, size, steps = [""] * len(texts), backend.config.batch_size, 0
    with torch.inference_mode():
        for start in range(0, len(order), size):
            idx = order[start:start + size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, padding_side="left",
                            truncation=True, max_length=backend.config.max_input_tokens).to(model.device)
            generated = model.generate(**enc, max_new_tokens=k, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)
            new = generated[:, enc["input_ids"].shape[1]:]
            steps += new.shape[1]
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
                out[i] = text
    return out, steps


def run_local(samples: list[Sample], k: int) -> dict:
    """(b) local p_yes vs Judge(local), and (c) p_yes vs generate+parse, on the same prompts."""
    from medix.judge.local_backend import LocalBackend

    config = JudgeConfig(backend="local", cache=False)
    backend = LocalBackend(config)
    judge = Judge(config)  # builds its own LocalBackend over the same cached model
    requests = [s.request for s in samples]
    prompts = [judge.render(r) for r in requests]
    try:
        backend.p_yes(prompts[:4])  # warm-up outside the clock
        generate_verdicts(backend, prompts[:2], 2)
        start = time.perf_counter()
        probs = backend.p_yes(prompts)
        t_logits = time.perf_counter() - start
        start = time.perf_counter()
        verdicts = judge.judge(requests)
        t_judge = time.perf_counter() - start
        start = time.perf_counter()
        texts, steps = generate_verdicts(backend, prompts, k)
        parsed = [parse_verdict(t) for t in texts]
        t_generate = time.perf_counter() - start
    finally:
        judge.close()
    logit_verdicts = [1.0 if p > 0.5 else 0.0 for p in probs]
    both = [(a, b) for a, b in zip(logit_verdicts, parsed) if b is not None]
    log.info("sample generated verdict texts: %s", texts[:3])
    return {"t_logits": t_logits, "t_judge": t_judge, "t_generate": t_generate, "steps": steps,
            "batches": -(-len(prompts) // config.batch_size), "unparsable": sum(p is None for p in parsed),
            "agree": sum(a == b for a, b in both), "comparable": len(both), "judge_errors": sum(not v.ok for v in verdicts),
            "judge_same": sum(v.score == lv for v, lv in zip(verdicts, logit_verdicts))}


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str]


def show(tables: list[Table], markdown: bool) -> None:
    if markdown:
        for t in tables:
            print(f"### {t.title}\n")
            print("| " + " | ".join(t.headers) + " |")
            print("|" + "|".join("---" for _ in t.headers) + "|")
            for row in t.rows:
                print("| " + " | ".join(row) + " |")
            print("".join(f"\n{note}" for note in t.notes) + "\n")
        return
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console()
    for t in tables:
        table = RichTable(*t.headers, title=t.title, title_justify="left")
        for row in t.rows:
            table.add_row(*row)
        console.print(table)
        for note in t.notes:
            console.print(note, markup=False)
        console.print()


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def tables_a(args, original_s: float, original_n: int, comp: dict) -> tuple[Table, float]:
    scaled = original_s / original_n * args.n
    medix_s = statistics.median(comp["times"])
    speedup = scaled / medix_s
    note = f"measured on {original_n}, scaled to {args.n}" if original_n != args.n else "measured on all"
    rows = [["original (sequential sync judge + embed)", str(args.n), str(args.n), f"{scaled:.2f}",
             f"{args.n / scaled:.1f}", note],
            ["medix CompositeReward.score", str(args.n), str(statistics.median(comp["judged"])), f"{medix_s:.2f}",
             f"{args.n / medix_s:.1f}", f"median of {len(comp['times'])} runs"]]
    notes = [f"Speed-up: {speedup:.1f}x (target >= 50x: {verdict(speedup >= 50)}).",
             f"medix: {comp['exact']} of {args.n} completions were exact matches decided by the guard (no judge, "
             f"no embedding); judge requests counted on the server per run: {comp['judged']}; "
             f"judge errors: {comp['errors']}. The original pattern judges and embeds every completion.",
             f"Simulated judge latency {args.latency} s, unbounded concurrency, separate process."]
    return Table("(a) Composite reward: original call pattern vs medix", ["Pattern", "Completions",
                 "Judge requests", "Seconds", "Completions/s", "Note"], rows, notes), speedup


def tables_b(args, jo: dict | None, loc: dict | None) -> tuple[Table, list[float]]:
    rows, ratios = [], []
    if jo:
        direct, medix = statistics.median(jo["times"]["direct"]), statistics.median(jo["times"]["medix"])
        ratios.append(direct / medix)
        rows += [[f"simulated server ({args.latency} s)", "direct AsyncOpenAI + gather", str(args.n),
                  f"{direct:.3f}", f"{args.n / direct:.1f}", "", str(jo["errors"]["direct"])],
                 ["", "medix Judge.judge (max_concurrency=512)", str(args.n), f"{medix:.3f}", f"{args.n / medix:.1f}",
                  f"{direct / medix:.0%}", str(jo["errors"]["medix"])]]
    if loc:
        m = args.local_n
        ratios.append(loc["t_logits"] / loc["t_judge"])
        rows += [["local (smollm2-135m, CPU)", "direct LocalBackend.p_yes", str(m), f"{loc['t_logits']:.2f}",
                  f"{m / loc['t_logits']:.1f}", "", "0"],
                 ["", "medix Judge.judge (backend=local)", str(m), f"{loc['t_judge']:.2f}", f"{m / loc['t_judge']:.1f}",
                  f"{loc['t_logits'] / loc['t_judge']:.0%}", str(loc["judge_errors"])]]
    notes = [f"Target: medix >= 90% of direct throughput: {', '.join(f'{r:.0%} {verdict(r >= 0.9)}' for r in ratios)}.",
             "All prompts are distinct: Judge deduplicates identical prompts, which would flatter medix.",
             f"Simulated server: median of {args.repeats} runs each, direct and medix interleaved; local: one run each."]
    if loc:
        notes.append(f"Judge(local) verdicts equal to p_yes > 0.5 on {loc['judge_same']} of {args.local_n}.")
    return Table("(b) Judge vs the backend's own saturated throughput", ["Backend", "Client", "Requests", "Seconds",
                 "Requests/s", "medix / direct", "Errors"], rows, notes), ratios


def tables_c(args, loc: dict) -> tuple[Table, float]:
    m, k = args.local_n, args.max_new_tokens
    ratio = loc["t_generate"] / loc["t_logits"]
    rows = [["logits: one batched forward pass (LocalBackend.p_yes)", str(m), "-", f"{loc['t_logits']:.2f}",
             f"{m / loc['t_logits']:.1f}", "1.0x"],
            [f"generate verdict text (greedy, K={k}) + parse_verdict", str(m), str(k), f"{loc['t_generate']:.2f}",
             f"{m / loc['t_generate']:.1f}", f"{ratio:.2f}x slower"]]
    notes = [f"Logits vs generation: {ratio:.2f}x (target >= 5x: {verdict(ratio >= 5)}).",
             f"Same model (smollm2-135m, CPU), prompts, batch size 16, length-sorted batches, left padding; the logits "
             f"row is the p_yes run of table (b). Decode steps: {loc['steps']} over {loc['batches']} batches "
             f"(generation stops early when a whole batch has emitted EOS).",
             f"Generated text unparsable by parse_verdict: {loc['unparsable']} of {m}; where parsable, it agreed with "
             f"the logit verdict on {loc['agree']} of {loc['comparable']}."]
    return Table("(c) Local judge: logit verdict vs generated verdict", ["Method", "Items", "K (max new tokens)",
                 "Seconds", "Items/s", "Relative time"], rows, notes), ratio


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=512, help="completions / judge requests (a, b)")
    p.add_argument("--original-n", type=int, default=64, help="completions the original pattern is timed on")
    p.add_argument("--local-n", type=int, default=128, help="prompts for the CPU-bound local judge (b, c)")
    p.add_argument("--latency", type=float, default=0.2, help="simulated judge latency in seconds")
    p.add_argument("--max-new-tokens", type=int, default=16, help="K: tokens generated per verdict text (c)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each simulated-server measurement (median)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSONL with question/answer columns")
    p.add_argument("--parts", default="abc", help="which parts to run, e.g. 'ab'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    # Libraries stay at WARNING (httpx logs every request at INFO); this script's own progress at INFO.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    pairs, source = load_pairs(args.data)
    samples = build_samples(pairs, max(args.n, args.local_n), args.seed)
    log.info("%d distinct Q/A pairs from %s; %d samples", len(pairs), source, len(samples))
    load = os.getloadavg()[0]
    if load > 0.5:  # with 2 cores, one busy neighbour stalls torch's thread pool and skews every CPU figure
        log.warning("load average %.2f before the run: other jobs will distort the timings", load)
    tables, results = [], {}
    if "a" in args.parts or "b" in args.parts:
        with judge_server(args.latency) as root:
            if "a" in args.parts:
                original_n = min(args.original_n, args.n)
                log.info("(a) original pattern on %d completions", original_n)
                with Judge(openai_judge_config(root)) as renderer:  # only for its prompt template
                    original_s = run_original(root, samples[:original_n], renderer.render)
                log.info("(a) medix CompositeReward on %d completions", args.n)
                tables.append(tables_a(args, original_s, original_n, run_composite(root, samples[:args.n],
                                                                                   args.repeats))[0])
            if "b" in args.parts:
                log.info("(b) direct load test vs Judge on %d prompts", args.n)
                results["jo"] = run_judge_openai(root, samples[:args.n], args.repeats)
    if "b" in args.parts or "c" in args.parts:
        log.info("(b, c) local judge on %d prompts", args.local_n)
        results["loc"] = run_local(samples[:args.local_n], args.max_new_tokens)
    if "b" in args.parts:
        tables.append(tables_b(args, results.get("jo"), results["loc"])[0])
    if "c" in args.parts:
        tables.append(tables_c(args, results["loc"])[0])
    print(f"n={args.n}, data: {source}; {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, "
          f"load average at start {load:.2f}\n")
    show(tables, args.markdown)


if __name__ == "__main__":
    main()
