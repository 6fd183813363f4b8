#!/usr/bin/env python
"""The local judge's binary prompt, measured: template variants side by side on the same audit pairs.

Run from the repository root with the venv active, on an idle machine (the benchmark mirrors beside the repo,
else the bundled sample set):

    python bench/judge_prompts.py --model qwen2.5-coder-1.5b --n 480 --markdown     # the CPU judge, all kinds
    python bench/judge_prompts.py --model smollm2-135m --n 480 --markdown           # the fast fallback
    python bench/judge_prompts.py --smoke                                           # toy sizes (CI, seconds)

Variants: `packaged` (src/medix/judge/templates/binary.jinja, what `judge.template: null` uses) and the
files in bench/judge_templates/ — the question left out, the rules of a sentence answer spelled out, the rules
with short worked examples, the candidate before the reference. Every variant judges the same pairs
(medix.judge.pairs, every kind unless --kinds) in this one process, one after another; its row gives the
seconds per pair, AUC, accuracy at P(YES) > 0.5 and, the figure to choose by, the accuracy, false-YES and
false-NO rates of a threshold fitted out of sample (k folds by item, medix.judge.calibration), with the worst
kind. Compare rows within one run. Speed is never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hardware import show as show_hardware

from medix.judge.config import JudgeConfig
from medix.eval.items import TaskUnavailable, load_items
from medix.eval.registry import select_tasks
from medix.judge import Judge
from medix.judge.audit import run_audit
from medix.judge.pairs import pairs_from_items, parse_kinds

REPO = Path(__file__).resolve().parents[1]
MIRRORS = REPO.parent / "shared" / "benchmarks"
VARIANTS = REPO / "bench" / "judge_templates"
SMOKE = {"model": "smollm2-135m", "n": 16, "folds": 2}


def items(data_dir: Path | None) -> tuple[list, str]:
    from medix.eval.runner import sample_dir

    root = data_dir or (MIRRORS if MIRRORS.is_dir() else sample_dir())
    out = []
    for spec in select_tasks("all"):
        if spec.kind == "report":
            continue
        try:
            out += load_items(spec, root, protocol="paper")
        except TaskUnavailable:
            continue
    return out, "benchmark mirrors" if root == MIRRORS else str(root)


def variants(names: str | None) -> dict[str, Path | None]:
    found = {"packaged": None, **{p.stem: p for p in sorted(VARIANTS.glob("*.jinja"))}}
    if not names:
        return found
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in found]
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(found)}")
    return {n: found[n] for n in wanted}


def measure(model: str, template: Path | None, pairs: list, folds: int, dtype: str,
            report_path: Path | None = None) -> dict:
    config = JudgeConfig(backend="local", model=model, template=str(template) if template else None, threshold=0.5,
                         cache=False, dtype=dtype)
    with Judge(config) as judge:
        start = time.perf_counter()
        report = run_audit(judge, pairs, rounds=1, folds=folds)
        seconds = time.perf_counter() - start
    if report_path is not None:  # the whole audit, P(YES) of every pair included, to re-read without the judge
        report_path.write_text(json.dumps({k: v for k, v in report.items() if k != "roc"}, indent=1),
                               encoding="utf-8")
    threshold = report["calibration"]["methods"]["threshold"]
    oos = threshold["out_of_sample"]
    worst = min(((r["accuracy"], k) for k, r in oos["by_kind"].items() if r["n"]), default=(None, "—"))
    return {"pairs": len(pairs), "seconds": seconds, "s_per_pair": seconds / len(pairs), "auc": report.get("auc"),
            "acc_at_0_5": report["accuracy"], "threshold": threshold["threshold"], "oos_accuracy": oos["accuracy"],
            "oos_fpr": oos["fpr"], "oos_fnr": oos["fnr"], "worst_kind": worst[1], "worst_kind_accuracy": worst[0],
            "by_kind": {k: r["accuracy"] for k, r in oos["by_kind"].items()}}


def pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--n", type=int, default=480, help="pairs, shared evenly among the kinds")
    parser.add_argument("--kinds", default="all")
    parser.add_argument("--variants", default=None, help="comma list (default: all)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--reports", type=Path, default=None,
                        help="write each variant's audit report to DIR/<variant>.json")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--smoke", action="store_true", help=f"toy sizes: {SMOKE}")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.n, args.folds = SMOKE["model"], SMOKE["n"], SMOKE["folds"]
    show_hardware(markdown=args.markdown)
    found, source = items(args.data_dir)
    pairs = pairs_from_items(found, args.n, args.seed, parse_kinds(args.kinds))
    kinds = sorted({p.kind for p in pairs})
    print(f"\n{len(pairs)} pairs from the {source} ({', '.join(kinds)}); judge {args.model}, dtype {args.dtype}; "
          f"{args.folds} folds by item; variants run one after another in this process\n")
    rows = {}
    for name, template in variants(args.variants).items():
        if args.reports:
            args.reports.mkdir(parents=True, exist_ok=True)
        rows[name] = measure(args.model, template, pairs, args.folds, args.dtype,
                             args.reports / f"{name}.json" if args.reports else None)
        print(f"{name}: {rows[name]['seconds']:.0f} s", flush=True)
    header = ("| variant | s/pair | AUC | acc@0.5 | out-of-sample threshold | out-of-sample acc | false YES | "
              "false NO | worst kind |")
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['s_per_pair']:.3f} | {r['auc']:.3f} | {pct(r['acc_at_0_5'])} | {r['threshold']:.4f} | "
              f"**{pct(r['oos_accuracy'])}** | {pct(r['oos_fpr'])} | {pct(r['oos_fnr'])} | "
              f"{r['worst_kind']} {pct(r['worst_kind_accuracy'])} |")
    print("\nOut-of-sample accuracy per kind (%):\n")
    print("| variant | " + " | ".join(kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(pct(r["by_kind"].get(k)) for k in kinds) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
