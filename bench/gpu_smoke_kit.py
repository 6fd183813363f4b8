"""The GPU smoke kit: wheels of everything bench/gpu_smoke.py imports that a bare GPU machine lacks.

A bare GPU machine has Python 3.12, PyTorch with CUDA, an older transformers and no network. The kit is the
whole dependency closure of what the smoke imports, resolved by pip for that Python and platform, minus what
such a machine already has (PyTorch and its own dependencies, and transformers' small ones), so nothing is
left to import that is neither in the kit nor on the machine (an earlier hand-made list missed openai's
httpx2 and datasets' pyarrow). The wheels are split into parts of at most 60 MiB, each carried in its own call
where a transfer is capped (64 MiB).

    python bench/gpu_smoke_kit.py prepare --out .gpu_smoke                  # here: resolve, download, split
    python bench/gpu_smoke_kit.py check --kit .gpu_smoke --python python3.12 # install beside a bare machine's set
    python bench/gpu_smoke_kit.py --smoke --out DIR --python python3.12       # both, with a table (CI runs this)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
# What the smoke imports (medix's training, eval and judge-stub paths), at the project's tested pins.
REQUIREMENTS = (
    "trl==1.16.0", "transformers==5.17.0",  # the GPU stack's (pyproject's gpu extra)
    "datasets>=5.0,<6", "openai>=3.50,<4", "httpx>=0.28,<1",
    "pydantic>=2.10,<3", "pyyaml>=6,<7", "jinja2>=3.1,<4", "gguf>=0.19,<1", "accelerate>=1.10,<2",
    "starlette>=0.46,<2", "uvicorn>=0.34,<1", "typer>=0.29,<1", "rich>=14,<16", "numpy>=2,<3", "pillow>=10,<13",
)
# On a bare GPU machine already: PyTorch and what it depends on, and transformers' small dependencies.
ON_THE_MACHINE = re.compile(
    r"^(torch|triton|nvidia-.*|numpy|sympy|networkx|mpmath|filelock|fsspec|jinja2|markupsafe|typing[-_]extensions|"
    r"setuptools|packaging|pyyaml|regex|requests|certifi|idna|urllib3|charset[-_]normalizer|tqdm)$", re.I)
PART_BYTES = 60 * 2**20


def pip(*args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True, check=True)


def platform_args(python_version: str) -> list[str]:
    out = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for platform in PLATFORMS:
        out += ["--platform", platform]
    return out


def resolve(python_version: str) -> list[tuple[str, str]]:
    """(name, version) of the whole closure of REQUIREMENTS for a bare machine's Python and platform."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        pip("install", "-q", "--dry-run", "--ignore-installed", "--report", str(report), "--target",
            str(Path(tmp) / "target"), *platform_args(python_version), *REQUIREMENTS)
        installs = json.loads(report.read_text())["install"]
    return sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in installs)


MARK = "on_the_machine.txt"  # written by `prepare`: a folder without it is not a kit


def prepare(out: Path, python_version: str) -> list[list[Path]]:
    if out.is_dir() and any(out.iterdir()) and not (out / MARK).is_file():
        raise SystemExit(f"{out}: not empty and not a kit made by this script (no {MARK}); give a new folder")
    closure = resolve(python_version)
    kit = [f"{name}=={version}" for name, version in closure if not ON_THE_MACHINE.match(name)]
    machine = [f"{name}=={version}" for name, version in closure if ON_THE_MACHINE.match(name)]
    download = out / "download"
    shutil.rmtree(download, ignore_errors=True)
    pip("download", "-q", "--no-deps", *platform_args(python_version), "-d", str(download), *kit)
    for old in out.glob("wheels-*"):
        shutil.rmtree(old)
    parts: list[list[Path]] = []
    for wheel in sorted(download.glob("*.whl"), key=lambda p: -p.stat().st_size):  # first fit, largest first
        for part in parts:
            if sum(w.stat().st_size for w in part) + wheel.stat().st_size <= PART_BYTES:
                part.append(wheel)
                break
        else:
            parts.append([wheel])
    for index, part in enumerate(parts, 1):
        folder = out / f"wheels-{index}"
        folder.mkdir(parents=True)
        for wheel in part:
            shutil.move(str(wheel), folder / wheel.name)
    shutil.rmtree(download)
    (out / MARK).write_text("\n".join(machine) + "\n")  # what the kit assumes, for `check`
    return [sorted((out / f"wheels-{i}").iterdir()) for i in range(1, len(parts) + 1)]


# Imported by the check: every top-level package the smoke reaches, except torch (and what imports it).
IMPORTS = ("datasets", "pyarrow", "openai", "httpx", "pydantic", "yaml", "jinja2", "gguf", "starlette", "uvicorn",
           "typer", "rich", "PIL", "huggingface_hub", "tokenizers", "safetensors")


def check(kit: Path, python: str) -> list[str]:
    """Install the kit into a new venv of `python` beside the bare machine's packages (torch left out: its
    CUDA build is several GB), then `pip check` and import what does not need torch. Problems, or []."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        py = str(venv / "bin" / "python")
        machine = [r for r in (kit / MARK).read_text().split() if not r.startswith(("torch==",
                                                                                                     "triton==",
                                                                                                     "nvidia-"))]
        pip("install", "-q", "--no-deps", *machine, python=py)
        pip("install", "-q", "--no-deps", "--no-index", *map(str, sorted(kit.glob("wheels-*/*.whl"))), python=py)
        problems = []
        broken = subprocess.run([py, "-m", "pip", "check"], capture_output=True, text=True).stdout.splitlines()
        problems += [line for line in broken if not re.search(r"requires (torch|triton|nvidia-)", line, re.I)
                     and "No broken requirements" not in line]
        for module in IMPORTS:
            done = subprocess.run([py, "-c", f"import {module}"], capture_output=True, text=True)
            if done.returncode:
                problems.append(f"import {module}: {done.stderr.strip().splitlines()[-1]}")
        return problems


def table(parts: list[list[Path]], problems: list[str] | None) -> str:
    """One row per part (wheels, MiB), and the check's verdict."""
    rows = [f"{'part':<10}  {'wheels':>6}  {'MiB':>6}"]
    for index, part in enumerate(parts, 1):
        rows.append(f"{'wheels-' + str(index):<10}  {len(part):>6}  "
                    f"{sum(w.stat().st_size for w in part) / 2**20:>6.1f}")
    if problems is None:
        return "\n".join(rows + ["check: skipped (no such Python)"])
    return "\n".join(rows + (problems or ["check: pip check clean, every torch-free import resolves"]))


def smoke(out: Path, python: str) -> int:
    """prepare, then check when `python` runs: the kit's whole life, as CI sees it."""
    parts = prepare(out, PYTHON_VERSION)
    runs = shutil.which(python) is not None and subprocess.run([python, "-c", "import venv"],
                                                               capture_output=True).returncode == 0
    problems = check(out, python) if runs else None
    print(table(parts, problems))
    return 1 if problems else 0


def main() -> int:
    if "--smoke" in sys.argv:  # resolving and downloading is the whole job: the smoke does it for real
        smoke_parser = argparse.ArgumentParser()
        smoke_parser.add_argument("--smoke", action="store_true")
        smoke_parser.add_argument("--out", type=Path, required=True)
        smoke_parser.add_argument("--python", default=f"python{PYTHON_VERSION}")
        args = smoke_parser.parse_args()
        return smoke(args.out, args.python)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, default=Path(".gpu_smoke"))
    p.add_argument("--python-version", default=PYTHON_VERSION)
    c = sub.add_parser("check")
    c.add_argument("--kit", type=Path, default=Path(".gpu_smoke"))
    c.add_argument("--python", default=f"python{PYTHON_VERSION}")
    args = parser.parse_args()
    if args.command == "prepare":
        print(table(prepare(args.out, args.python_version), None).rsplit("\n", 1)[0])
        return 0
    problems = check(args.kit, args.python)
    print("\n".join(problems) if problems else "kit complete: pip check clean, every import resolves")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
