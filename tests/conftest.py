"""Fixtures every test folder shares: the benchmark mirrors, a loopback judge stub and its config, a loopback
policy server, a server whose reply a test sets. Shared plain helpers (paths, servers, runners) are in helpers/."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from helpers import BENCHMARKS

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A shell's background job (`cmd &`) starts with SIGINT ignored, and children inherit that: the Ctrl-C tests'
# subprocesses would never see their SIGINT. Python's own handler here is reset to the default at their exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# Tests judge with the fast SmolLM2-135M unless they ask for another, also where the CPU judge is installed
# (the product's default there); tests of the default itself remove this.
os.environ.setdefault("MEDIX_DEFAULT_JUDGE", "smollm2-135m")


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


@pytest.fixture(scope="module")
def stub_url():
    """One loopback judge stub shared by a module's tests (its URL)."""
    from medix.testing.stub_server import JudgeStub

    with JudgeStub() as stub:
        yield stub.url


@pytest.fixture
def stub_judge_config(stub, tmp_path):
    from medix.judge.config import JudgeConfig

    return JudgeConfig(backend="openai", model="stub", base_urls=[stub.url], cache_path=str(tmp_path / "c.sqlite"),
                       timeout_s=2, backoff_s=0.01)


@pytest.fixture
def policy():
    """A loopback policy server that answers option A to every question."""
    from medix.testing.stub_server import JudgeStub

    with JudgeStub(role="policy", policy_answer="A") as server:
        yield server


@pytest.fixture
def response_server():
    """A loopback server whose /v1/chat/completions answers with `state["reply"]()` (a starlette Response)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    from medix.testing.stub_server import LoopbackServer

    state = {"reply": None}

    async def completions(request):
        return state["reply"]()

    with LoopbackServer(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])) as server:
        state["url"] = server.url
        yield state
