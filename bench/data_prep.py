"""Training-data prep at the training set's scale: the row-by-row path of commit OLD_REF vs the lazy one.

    python bench/data_prep.py                          # new: 2k and 20k rows of .jsonl (image paths) and .parquet
                                                       # (image bytes); old: the sizes it fits at (see --help)
    python bench/data_prep.py --smoke                  # 30 rows, old and new (run by tests/train/test_data_prep.py)
    python bench/data_prep.py --markdown               # the table for docs/performance.md

The dataset is synthetic with the schema of MBZUAI/medix-rl-data (`image`: a list of images, `problem`,
`solution` = "<TAG> answer"), built from the real VQA-RAD and PathVQA mirror images and questions (found as
the tests find them: ../shared/benchmarks next to the repo, or $MEDIX_BENCHMARKS); every 100th
question (the 8th, 108th, ...) is made too long for the 4352-token filter, so that the count of dropped
rows is checked too.

Each run is its own subprocess with a fresh datasets cache, started through a small launcher so that the
launcher's `resource.getrusage(RUSAGE_CHILDREN).ru_maxrss` is that run's peak RSS (the largest single
process of the run) and nothing else. "old" is `prepare` as of OLD_REF (rows as Python objects, the
processor run on every decoded image in one process), loaded from git; "new" is the current one. The policy
processor is the tiny Qwen3-VL's (medix.testing.tiny): a real Qwen-VL image processor and smart resize, at
64×64 pixels at most unless --max-pixels says otherwise. Speed and memory are never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OLD_REF = "99e5813"  # the last commit whose prepare() held every row in Python and processed every image
# Peak RSS of the launcher's children = the run's own peak: the launcher starts nothing else.
LAUNCHER = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
            "print('maxrss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(rc)")
log = logging.getLogger("bench.data_prep")


SAMPLE = REPO / "src" / "medix" / "eval" / "sample"  # the bundled sample set: 5 VQA-RAD / PathVQA rows each


def benchmarks_dir(arg: str | None, smoke: bool = False) -> Path:
    path = Path(arg or os.environ.get("MEDIX_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
    if not (path / "rad_vqa" / "test.jsonl").is_file():
        if smoke:  # a smoke run only needs real images of the schema, not the mirrors' variety
            return SAMPLE
        sys.exit(f"benchmark mirrors not found at {path} (give --benchmarks DIR or set MEDIX_BENCHMARKS)")
    return path


def pool(bench: Path) -> list[tuple[str, str, str]]:
    """(absolute image path, question, "<TAG> answer") from the VQA-RAD and PathVQA mirrors."""
    out = []
    for task, tag in (("rad_vqa", "OTHER"), ("path_vqa", "MICROSCOPY")):
        for line in (bench / task / "test.jsonl").open():
            row = json.loads(line)
            out.append((str(bench / task / row["image"]), row["question"], f"<{tag}> {row['answer']}"))
    return out


def synthetic_rows(items: list[tuple[str, str, str]], n: int):
    for i in range(n):
        image, question, solution = items[i % len(items)]
        long = (question + " ") * (30000 // (len(question) + 1) + 1)  # > 5000 tokens: filtered out
        problem = long if i % 100 == 7 else question
        yield {"image": [image], "problem": problem, "solution": solution}


def write_jsonl(items, n: int, path: Path) -> Path:
    with path.open("w") as fh:
        for row in synthetic_rows(items, n):
            fh.write(json.dumps(row) + "\n")
    return path


def write_parquet(items, n: int, path: Path) -> Path:
    """The same rows with the image bytes inside, as the hub dataset stores them (written in batches)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Features, Image, List, Value

    features = Features({"image": List(Image()), "problem": Value("string"), "solution": Value("string")})
    schema = features.arrow_schema
    with pq.ParquetWriter(str(path), schema) as writer:
        batch = []
        for row in synthetic_rows(items, n):
            row["image"] = [{"bytes": Path(p).read_bytes(), "path": Path(p).name} for p in row["image"]]
            batch.append(row)
            if len(batch) == 500:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return path


def old_prepare(workdir: Path):
    """`prepare` as of OLD_REF, imported from `git show` copies of its two modules."""
    folder = workdir / "old_code"
    folder.mkdir(exist_ok=True)
    modules = (("old_datasets", "src/medix/data/datasets.py"), ("old_dataset", "src/medix/train/dataset.py"))
    for module, source in modules:
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{OLD_REF}:{source}"], check=True,
                              capture_output=True, text=True).stdout
        text = text.replace("from medix.data.datasets import", "from old_datasets import")
        # The modality tags moved into data/response.py since; same names, same values.
        text = text.replace("from medix.data.modality import", "from medix.data.response import")
        (folder / f"{module}.py").write_text(text)
    sys.path.insert(0, str(folder))
    import old_dataset

    return old_dataset.prepare


def worker(args) -> None:
    """One measurement in this process: prints a JSON line with rows, time and the peak before prepare."""
    import resource

    import datasets

    datasets.disable_progress_bars()
    from medix.testing.tiny import tiny_qwen3_vl
    from medix.train.config import ModelConfig, load_train_config
    from medix.train.policy import prepare_policy

    model, processor = tiny_qwen3_vl()
    prepare_policy(model, processor, ModelConfig(min_pixels=args.min_pixels, max_pixels=args.max_pixels))
    del model
    overrides = [f"data.train={args.worker}"] + ([f"data.num_proc={args.num_proc}"] if args.num_proc else [])
    cfg = load_train_config(None, overrides).data
    if args.impl == "old":
        prepare = old_prepare(Path(args.workdir))
    else:
        from medix.train.trl_rows import prepare
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sampler = AnonSampler()
    start = time.perf_counter()
    prepared = prepare(args.worker, cfg, processor, vision=True)
    seconds = time.perf_counter() - start
    sampler.stop()
    print(json.dumps({"kept": len(prepared.dataset), "too_long": prepared.too_long, "loaded": prepared.loaded,
                      "seconds": seconds, "before_kb": before, "anon_kb": sampler.peak_kb}))


class AnonSampler:
    """Peak anonymous RSS of this process (heap, not file pages mapped from Arrow files), sampled every 20 ms
    from /proc/self/status: ru_maxrss also counts the memory-mapped pages that were read, which the kernel can
    drop at any time."""

    def __init__(self):
        import threading

        self.peak_kb, self._done = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._done.wait(0.02):
            self.sample()

    def sample(self):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def stop(self):
        self._done.set()
        self._thread.join()
        self.sample()


def measure(data: Path, impl: str, args, cache: Path) -> dict:
    """One run in its own process tree; the launcher reports the tree's peak RSS."""
    cmd = [sys.executable, __file__, "--worker", str(data), "--impl", impl, "--workdir", str(args.workdir)]
    cmd += [f"--{k.replace('_', '-')}={v}" for k, v in (("min_pixels", args.min_pixels),
                                                         ("max_pixels", args.max_pixels),
                                                         ("num_proc", args.num_proc)) if v]
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{impl} run on {data.name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["peak_kb"] = int(done.stderr.strip().splitlines()[-1].split()[-1])
    return result


def old_code_available() -> bool:
    """A shallow clone may not hold OLD_REF; then only the current code can be measured."""
    return subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{OLD_REF}^{{commit}}"],
                          capture_output=True).returncode == 0


def run_all(args) -> list[dict]:
    items = pool(benchmarks_dir(args.benchmarks, args.smoke))
    if not old_code_available():
        if not args.smoke:
            sys.exit(f"commit {OLD_REF} (the old prepare) is not in this clone: fetch the full history to compare")
        print(f"note: commit {OLD_REF} is not in this clone, so the old code is not run")
        args.old_jsonl_sizes, args.old_parquet_sizes = [], []
    results = []
    for fmt in args.formats:
        old_sizes = args.old_parquet_sizes if fmt == "parquet" else args.old_jsonl_sizes
        for n in sorted(set(args.sizes) | set(old_sizes)):
            data = (write_jsonl if fmt == "jsonl" else write_parquet)(items, n, args.workdir / f"train-{n}.{fmt}")
            impls = (["new"] if n in args.sizes else []) + (["old"] if n in old_sizes else [])
            for impl in impls:
                cache = args.workdir / f"hf-{fmt}-{n}-{impl}"
                runs = [measure(data, impl, args, cache)]
                if impl == "new" and args.rerun:
                    runs.append(measure(data, impl, args, cache))  # same cache: what a restart / rank 1 pays
                results.append({"format": fmt, "rows": n, "impl": impl, **runs[0],
                                "cached_seconds": runs[1]["seconds"] if len(runs) > 1 else None})
                log.info("%s", results[-1])
            data.unlink()
    return results


def table(results: list[dict], markdown: bool) -> str:
    head = ["format", "rows", "code", "kept", "too long", "seconds", "rows/s", "peak RSS MB",
            "peak anon RSS MB", "RSS before prepare MB", "cached re-run s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---|" + "---:|" * (len(head) - 3)] if markdown \
        else ["  ".join(f"{h:>12}" for h in head)]
    for r in results:
        cells = [r["format"], str(r["rows"]), r["impl"], str(r["kept"]), str(r["too_long"]), f"{r['seconds']:.1f}",
                 f"{r['rows'] / r['seconds']:.0f}", f"{r['peak_kb'] / 1024:.0f}", f"{r['anon_kb'] / 1024:.0f}",
                 f"{r['before_kb'] / 1024:.0f}",
                 "—" if r["cached_seconds"] is None else f"{r['cached_seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |" if markdown else "  ".join(f"{c:>12}" for c in cells))
    return "\n".join(lines + ratios(results))


def ratios(results: list[dict]) -> list[str]:
    """Peak RSS at the largest size over the smallest, per format and code (target for new: <= 1.2)."""
    out = []
    for fmt in dict.fromkeys(r["format"] for r in results):
        for impl in ("new", "old"):
            runs = sorted((r for r in results if (r["format"], r["impl"]) == (fmt, impl)), key=lambda r: r["rows"])
            if len(runs) > 1:
                big, small = runs[-1], runs[0]
                out.append(f"\n{fmt} {impl}: peak RSS at {big['rows']} rows / at {small['rows']} rows = "
                           f"{big['peak_kb'] / small['peak_kb']:.2f} (anonymous: "
                           f"{big['anon_kb'] / small['anon_kb']:.2f})")
    for r in results:  # both codes must agree on what they keep
        twin = [o for o in results if (o["format"], o["rows"]) == (r["format"], r["rows"]) and o is not r]
        if twin and (twin[0]["kept"], twin[0]["too_long"]) != (r["kept"], r["too_long"]):
            out.append(f"\nMISMATCH at {r['format']} {r['rows']}: old and new keep different rows")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--formats", nargs="+", choices=["jsonl", "parquet"], default=["jsonl", "parquet"])
    parser.add_argument("--old-jsonl-sizes", type=int, nargs="*", default=[2000, 5000],
                        help="Sizes the old code runs at on .jsonl (about 30 ms a row: 20k rows take ~10 min).")
    parser.add_argument("--old-parquet-sizes", type=int, nargs="*", default=[500, 1000],
                        help="Sizes the old code runs at on .parquet (it keeps every decoded image in RAM).")
    parser.add_argument("--num-proc", type=int, default=None, help="data.num_proc for the new code.")
    parser.add_argument("--min-pixels", type=int, default=None)
    parser.add_argument("--max-pixels", type=int, default=None)
    parser.add_argument("--no-rerun", dest="rerun", action="store_false", help="Skip the cached re-run.")
    parser.add_argument("--benchmarks", default=None, help="Benchmark mirrors (default: ../shared/benchmarks).")
    parser.add_argument("--smoke", action="store_true", help="30 rows of .jsonl, old and new, no re-run.")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=["old", "new"], default="new", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.smoke:
        args.sizes, args.old_jsonl_sizes, args.formats, args.rerun = [30], [30], ["jsonl"], False
    with tempfile.TemporaryDirectory(prefix="medix-data-prep-") as tmp:
        args.workdir = Path(tmp)
        print(table(run_all(args), args.markdown))


if __name__ == "__main__":
    main()
