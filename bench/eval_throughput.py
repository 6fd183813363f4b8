#!/usr/bin/env python
"""Eval throughput over 1, 2, 4 servers: the generate and judge phases vs the servers' saturated throughput.

    python bench/eval_throughput.py --servers 1,2,4 --markdown     # about 1-2 minutes; the docs table
    python bench/eval_throughput.py --smoke                        # seconds: 1 and 2 servers, tiny n (a test runs it)
    python bench/eval_throughput.py --vllm MODEL --markdown        # a real vLLM: its data parallelism vs 2 servers

`--vllm MODEL` runs the generate phase's load (the same items, all sent by `run_generate`) on real vLLM
servers started the way `--serve` starts them (`medix.serving`): one server, one server with
`--data-parallel-size 2` (one endpoint, vLLM balancing its two engines), and two separate servers spread by
medix's client. Extra vLLM arguments go in MEDIX_BENCH_VLLM_ARGS (e.g. "--enforce-eager" for the CPU build);
`--vllm MODEL --smoke` runs the first layout on 4 items (tests/serving/test_vllm_engine.py runs it).

Each "GPU" is one `medix.testing.stub_server` process simulating a batching engine of fixed capacity: at
most --capacity requests served at once, each taking --latency seconds, so one server does at most
capacity / latency requests/s and N servers N times that. For N servers:
  saturated   a direct load test of those N servers (AsyncOpenAI, requests spread evenly, all in flight).
  generate    `run_generate` (openai backend, base_urls = the N servers; samples = requests).
  judge       `run_judge` (3-round conversations, judge base_urls = the N servers; samples/s, 3 requests each).
"% of saturated" compares requests/s of the phase with the direct figure of the same N servers; the
target is >= 90% at 4 servers. Client and servers share this machine's CPUs: keep capacity / latency low
enough that the servers, not the CPU, are the limit (the defaults do, on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from medix.judge.config import JudgeConfig
from medix.eval.config import EvalConfig
from medix.eval.generate import run_generate, user_prompt
from medix.eval.judging import EvalJudge, run_judge
from medix.eval.registry import registry
from medix.eval.records import EvalItem, GenerationRecord, JsonlStore
from medix.judge import Judge, JudgeRequest
from medix.testing.stub_server import free_port

ROUNDS = 3


def start_servers(role: str, count: int, latency: float, capacity: int) -> tuple[list[subprocess.Popen], list[str]]:
    """`count` stub processes (all started, then all waited for); their base URLs."""
    ports = [free_port() for _ in range(count)]
    procs = [subprocess.Popen([sys.executable, "-m", "medix.testing.stub_server", "--port", str(port), "--role",
                               role, "--latency", str(latency), "--max-inflight", str(capacity)]) for port in ports]
    urls = [f"http://127.0.0.1:{port}/v1" for port in ports]
    for url in urls:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        for _ in range(300):
            try:
                client.models.list()
                break
            except openai.APIError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"server {url} did not start")
    return procs, urls


def saturated(urls: list[str], messages: list[list[dict]]) -> float:
    """Requests/s of a direct load test: request i to server i mod N, every request in flight at once."""
    async def go():
        clients = [openai.AsyncOpenAI(base_url=u, api_key="x", max_retries=0, timeout=300) for u in urls]
        start = time.perf_counter()
        await asyncio.gather(*(clients[i % len(clients)].chat.completions.create(model="m", messages=m, max_tokens=32)
                               for i, m in enumerate(messages)))
        elapsed = time.perf_counter() - start
        for client in clients:
            await client.close()
        return len(messages) / elapsed
    return asyncio.run(go())


def bench_generate(urls: list[str], n: int, capacity: int) -> dict:
    cfg = EvalConfig(model="m", backend="openai", base_urls=urls, max_concurrency=2 * capacity, max_new_tokens=32)
    items = [EvalItem(id=str(i), task="medqa", question=f"question {i}?", reference="A") for i in range(n)]
    direct = saturated(urls, [[{"role": "user", "content": user_prompt(cfg, it)}] for it in items])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        failed = run_generate(cfg, items, JsonlStore(Path(tmp) / "g.jsonl"))
        phase = n / (time.perf_counter() - start)
    assert failed == 0, f"{failed} generations failed"
    return {"saturated_sps": direct, "medix_sps": phase, "ratio": phase / direct}


def bench_judge(urls: list[str], n: int, capacity: int) -> dict:
    config = JudgeConfig(backend="openai", model="m", base_urls=urls, max_concurrency=2 * capacity, max_tokens=32,
                         timeout_s=300, cache=False)
    judge = EvalJudge(Judge(config), rounds=ROUNDS, protocol="medix")
    gens = [GenerationRecord(id=str(i), task="path_vqa", prompt_sha256="x", generator={}, question=f"q {i}?",
                             reference=f"finding {i}", raw="...", answer=f"finding {i if i % 2 else i + 1}")
            for i in range(n)]
    prompts = judge.judge.conversation_prompts["medix"]
    convs = [prompts.conversation(JudgeRequest(g.answer, g.reference, g.question)) for g in gens]
    messages = []  # the requests the phase sends: round 1, 2 and 3 of every conversation
    for conv in convs:
        turns = [{"role": "user", "content": conv.first}]
        for _ in range(ROUNDS):
            messages.append(list(turns))
            turns += [{"role": "assistant", "content": "YES"}, {"role": "user", "content": conv.followup}]
    direct = saturated(urls, messages) / ROUNDS
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        failed = run_judge(registry()["path_vqa"], judge, gens, JsonlStore(Path(tmp) / "j.jsonl"))
        phase = n / (time.perf_counter() - start)
    judge.judge.close()
    assert failed == 0, f"{failed} judgments failed"
    return {"saturated_sps": direct, "medix_sps": phase, "ratio": phase / direct}


def run(counts: list[int], latency: float, capacity: int, seconds: float) -> list[tuple[int, str, dict]]:
    rows = []
    per_server = capacity / latency  # requests/s one server can do
    for count in counts:
        for phase, role, fn, requests_per_sample in (("generate", "policy", bench_generate, 1),
                                                     ("judge", "judge", bench_judge, ROUNDS)):
            n = max(8, int(seconds * per_server * count / requests_per_sample))
            procs, urls = start_servers(role, count, latency, capacity)
            try:
                rows.append((count, phase, fn(urls, n, capacity)))
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait()
    return rows


VLLM_LAYOUTS = (("1 server", 1, 1), ("1 server, --data-parallel-size 2", 1, 2), ("2 servers, spread by medix", 2, 1))


def run_vllm(model: str, n: int, max_new_tokens: int, layouts=VLLM_LAYOUTS) -> list[tuple[str, float]]:
    """(layout, samples/s of run_generate) for each layout, the servers started as `--serve` starts them."""
    import contextlib
    import os
    import shlex

    from medix.serving.config import ServeConfig
    from medix.serving.layout import plan_server
    from medix.serving.process import ManagedServer

    extra = shlex.split(os.environ.get("MEDIX_BENCH_VLLM_ARGS", ""))
    items = [EvalItem(id=str(i), task="medqa", question=f"Which nerve is injured in case {i} of wrist drop?",
                      reference="A") for i in range(n)]
    rows = []
    for name, servers, data_parallel in layouts:
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            urls = []
            for k in range(servers):
                spec = ServeConfig(port=free_port(), data_parallel_size=data_parallel, max_model_len=1024,
                                   extra_args=extra)
                launch = plan_server(f"policy-{k}", model, spec, Path(tmp))
                stack.enter_context(ManagedServer(launch.command, launch.url, 600, log_path=launch.log_path))
                urls.append(launch.url)
            cfg = EvalConfig(model=model, backend="openai", base_urls=urls, max_new_tokens=max_new_tokens,
                             temperature=0.0, format_prompt=False)
            start = time.perf_counter()
            failed = run_generate(cfg, items, JsonlStore(Path(tmp) / "g.jsonl"))
            rows.append((name, n / (time.perf_counter() - start)))
            assert failed == 0, f"{failed} generations failed on {name}"
    return rows


def vllm_table(rows: list[tuple[str, float]], markdown: bool) -> str:
    sep = "|" if markdown else " "
    lines = ["| layout | generate (samples/s) | vs 1 server |"] + (["|---|---:|---:|"] if markdown else [])
    lines += [f"{sep} {name} {sep} {sps:.2f} {sep} {sps / rows[0][1]:.2f}x {sep}" for name, sps in rows]
    return "\n".join(lines)


def table(rows: list[tuple[int, str, dict]], markdown: bool) -> str:
    sep = "|" if markdown else " "
    lines = ["| servers | phase | saturated (samples/s) | medix (samples/s) | medix % of saturated "
             "| medix vs 1 server |"]
    if markdown:
        lines.append("|---:|---|---:|---:|---:|---:|")
    one = {phase: r["medix_sps"] for count, phase, r in rows if count == rows[0][0]}
    for count, phase, r in rows:
        lines.append(f"{sep} {count} {sep} {phase} {sep} {r['saturated_sps']:.1f} {sep} {r['medix_sps']:.1f} {sep} "
                     f"{100 * r['ratio']:.0f}% {sep} {r['medix_sps'] / one[phase]:.2f}x {sep}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="1,2,4", help="server counts, comma-separated")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request at a server")
    parser.add_argument("--capacity", type=int, default=4, help="requests one server serves at once")
    parser.add_argument("--seconds", type=float, default=4.0, help="about how long each measurement runs")
    parser.add_argument("--smoke", action="store_true", help="seconds: servers 1,2, short runs (for the test)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--vllm", metavar="MODEL", help="measure real vLLM servers of MODEL (see above)")
    parser.add_argument("--items", type=int, default=64, help="--vllm: items generated per layout")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="--vllm: tokens per answer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.vllm:
        start = time.perf_counter()
        layouts = VLLM_LAYOUTS[:1] if args.smoke else VLLM_LAYOUTS
        rows = run_vllm(args.vllm, 4 if args.smoke else args.items, 4 if args.smoke else args.max_new_tokens, layouts)
        print(f"vLLM {args.vllm}: {args.items if not args.smoke else 4} items, greedy; "
              f"{time.perf_counter() - start:.0f} s\n")
        print(vllm_table(rows, args.markdown))
        return
    if args.smoke:
        args.servers, args.latency, args.seconds = "1,2", 0.02, 0.3
    counts = [int(c) for c in args.servers.split(",") if c.strip()]
    start = time.perf_counter()
    rows = run(counts, args.latency, args.capacity, args.seconds)
    print(f"simulated batching servers: capacity {args.capacity} in flight, latency {args.latency * 1000:.0f} ms "
          f"each (at most {args.capacity / args.latency:.0f} requests/s per server); "
          f"{time.perf_counter() - start:.0f} s\n")
    print(table(rows, args.markdown))


if __name__ == "__main__":
    main()
