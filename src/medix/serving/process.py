"""A server process (a judge, or the policy under evaluation) on 127.0.0.1: started, waited for until it
answers, stopped cleanly.

`ManagedServer` is what `medix judge serve`, `medix train` (judge_serve.enabled) and `medix eval run --serve`
use: a context manager that stops the server's process group on every way out: normal exit, an exception,
Ctrl-C (during start-up too), SIGTERM (turned into SystemExit while the server runs) and, on Linux, the
death of medix itself (the child gets SIGTERM from the kernel). A port that already answers is refused
before anything starts, so medix never reports "ready" with another program's server.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from medix.errors import MedixError

log = logging.getLogger(__name__)


def models_error(base_url: str, timeout_s: float) -> str | None:
    """The OpenAI-compatible health check, GET {base_url}/models: None when it answers 2xx, else why not."""
    try:
        httpx.get(f"{base_url.rstrip('/')}/models", timeout=timeout_s).raise_for_status()
    except httpx.HTTPError as err:
        return err.__class__.__name__
    return None


class ManagedServer:
    """A child server process with a health wait and a clean stop."""

    def __init__(self, command: list[str], base_url: str, startup_timeout_s: float = 900.0,
                 env: dict[str, str] | None = None, log_path: str | Path | None = None):
        self.command = command
        self.base_url = base_url.rstrip("/")
        self.startup_timeout_s = startup_timeout_s
        self.env = dict(env or {})  # added to this process's environment (e.g. CUDA_VISIBLE_DEVICES)
        self.process: subprocess.Popen | None = None
        self._previous_sigterm = None  # the SIGTERM handler to put back on stop()
        if log_path is None:
            self._log = tempfile.NamedTemporaryFile(prefix="medix-judge-", suffix=".log", delete=False)
        else:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_path, "ab")  # appended: a resumed run keeps the earlier server's log

    @property
    def log_path(self) -> str:
        return self._log.name

    def start(self) -> "ManagedServer":
        self.refuse_busy_port()
        try:  # launch inside: Ctrl-C during Popen still restores SIGTERM and stops a child already started
            self.launch()
            return self.wait_for(self.process)
        except BaseException:  # a failed start, Ctrl-C or SIGTERM while launching or waiting
            self.stop()
            raise

    def launch(self) -> None:
        """Start the process without waiting for it (`wait_for` waits); so a caller can launch, then wait."""
        main = threading.current_thread() is threading.main_thread()
        if main:  # SIGTERM → SystemExit, so `finally` / `__exit__` blocks run and stop the child
            self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm) or signal.SIG_DFL
        # Own process group, so stop() also reaches the workers vLLM spawns.
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True, env={**os.environ, **self.env},
                                        preexec_fn=_parent_death_signal() if main else None)

    def refuse_busy_port(self) -> None:
        """MedixError when something already listens where the server is meant to start."""
        url = httpx.URL(self.base_url)
        host, port = url.host or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80)
        try:
            with socket.create_connection((host, port), timeout=1.0):
                pass
        except OSError:
            return  # nothing answers: free
        raise MedixError(f"port {port} on {host} is already in use (another server answers at {self.base_url}); "
                         "stop that program or choose another port (--port, judge_serve.port)")

    def wait_for(self, process: subprocess.Popen | None) -> "ManagedServer":
        """Poll until the server answers; fail early if `process` (when given) exits first."""
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                tail = Path(self.log_path).read_text(errors="replace")[-2000:]
                raise MedixError(f"server for {self.base_url} exited with code {process.returncode} before it "
                                 f"was ready; its log ({self.log_path}) ends with:\n{tail}")
            if self.healthy():
                return self
            time.sleep(0.5)
        raise MedixError(f"server at {self.base_url} not ready after {self.startup_timeout_s:.0f}s; "
                         f"see {self.log_path}")

    def healthy(self) -> bool:
        return models_error(self.base_url, timeout_s=2.0) is None

    def stop(self, grace_s: float = 20.0) -> None:
        previous, self._previous_sigterm = self._previous_sigterm, None
        if previous is not None and threading.current_thread() is threading.main_thread():  # SIG_DFL is 0
            signal.signal(signal.SIGTERM, previous)
        if self.process is None:
            return
        # The group outlives its leader when workers linger: signal the group even if the leader is gone.
        pgid = self.process.pid  # start_new_session: the child leads its own group
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> "ManagedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _parent_death_signal():
    """A preexec_fn asking the kernel to SIGTERM the child when medix dies, even by SIGKILL (Linux only).

    Only for Popen from the main thread: the kernel watches the thread that forked. prctl is looked up
    here, in the parent, so the child between fork and exec runs nothing but one C call."""
    if sys.platform != "linux":
        return None
    prctl, PR_SET_PDEATHSIG, sigterm = ctypes.CDLL(None, use_errno=True).prctl, 1, int(signal.SIGTERM)
    return lambda: prctl(PR_SET_PDEATHSIG, sigterm)


def serve_forever(server: ManagedServer) -> int:
    """Block until Ctrl-C or the server dies; always stop it. Returns the server's exit code."""
    try:
        while server.process.poll() is None:
            time.sleep(1.0)
        return server.process.returncode or 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
