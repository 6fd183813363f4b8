"""Shared fixtures: real embedded models (loaded once), a loopback judge stub, isolated verdict caches."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A shell's background job (`cmd &`) starts with SIGINT ignored, and children inherit that: the Ctrl-C tests'
# subprocesses would never see their SIGINT. Python's own handler here is reset to the default at their exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# Tests judge with the fast SmolLM2-135M unless they ask for another, also where the CPU judge is installed
# (the product's default there); tests of the default itself remove this.
os.environ.setdefault("MEDIX_DEFAULT_JUDGE", "smollm2-135m")
# Real benchmark mirrors, read by tests only (the product never depends on them).
BENCHMARKS = Path(os.environ.get("MEDIX_BENCHMARKS", Path(__file__).resolve().parents[2] / "shared" / "benchmarks"))
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    if not (BENCHMARKS / "README.md").is_file():
        pytest.skip("real benchmark mirrors not present next to the repo")
    return BENCHMARKS


@pytest.fixture
def stub():
    from medix.testing.stub_server import JudgeStub

    with JudgeStub() as server:
        yield server


@pytest.fixture
def stub_judge_config(stub, tmp_path):
    from medix.config import JudgeConfig

    return JudgeConfig(backend="openai", model="stub", base_urls=[stub.url], cache_path=str(tmp_path / "c.sqlite"),
                       timeout_s=2, backoff_s=0.01)
