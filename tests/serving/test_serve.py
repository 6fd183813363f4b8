"""ManagedServer: start a real server process on loopback, wait for health, stop it cleanly."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from medix.judge.config import JudgeConfig
from medix.errors import MedixError
from medix.judge import Judge, JudgeRequest
from medix.serving.process import ManagedServer
from medix.testing.stub_server import JudgeStub, free_port


def test_start_use_stop():
    port = free_port()
    command = [sys.executable, "-m", "medix.testing.stub_server", "--port", str(port), "--latency", "0"]
    url = f"http://127.0.0.1:{port}/v1"
    with ManagedServer(command, url, startup_timeout_s=60) as server:
        assert server.healthy()
        config = JudgeConfig(backend="openai", model="stub", base_urls=[url], cache=False)
        with Judge(config) as judge:
            assert judge.judge([JudgeRequest("Pneumothorax", "Pneumothorax")])[0].score == 1.0
    assert server.process.poll() is not None and not server.healthy()


def test_early_exit_reports_the_log():
    command = [sys.executable, "-c", "import sys; print('CUDA out of memory'); sys.exit(3)"]
    with pytest.raises(MedixError, match="(?s)exited with code 3.*CUDA out of memory"):
        ManagedServer(command, f"http://127.0.0.1:{free_port()}/v1", startup_timeout_s=30).start()


def test_ctrl_c_while_launching_puts_sigterm_back(monkeypatch):
    """Ctrl-C inside Popen (the child not started yet): the SIGTERM handler start() installed is put back."""
    import medix.serving.process

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(medix.serving.process.subprocess, "Popen", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    server = ManagedServer([sys.executable, "-c", "pass"], f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(KeyboardInterrupt):
        server.start()
    assert signal.getsignal(signal.SIGTERM) is before and server.process is None


def test_startup_timeout_stops_the_process():
    server = ManagedServer([sys.executable, "-c", "import time; time.sleep(60)"],
                           f"http://127.0.0.1:{free_port()}/v1", startup_timeout_s=1)
    with pytest.raises(MedixError, match="not ready after 1s"):
        server.start()
    assert server.process.poll() is not None


SERVER_SCRIPT = """
import sys, time
from medix.serving.process import ManagedServer

class Reporting(ManagedServer):
    def wait_for(self, process):  # the parent is now waiting for the engine: the guarded start has begun
        print("child", self.process.pid, flush=True)
        return super().wait_for(process)

port, delay = sys.argv[1], sys.argv[2]
command = [sys.executable, "-m", "medix.testing.stub_server", "--port", port, "--start-delay", delay]
with Reporting(command, f"http://127.0.0.1:{port}/v1", startup_timeout_s=300):
    print("ready", flush=True)
    time.sleep(300)
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie: an orphan re-parented to a PID 1 that does not reap stays a zombie forever."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to the signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _lines(stream, into: "queue.Queue[str | None]") -> None:
    for line in stream:
        into.put(line)
    into.put(None)  # the process closed its stdout


def _wait_for_line(lines: "queue.Queue[str | None]", prefix: str, timeout_s: float) -> list[str]:
    """The lines read until one starts with `prefix`; fails (with them) after `timeout_s` or at EOF."""
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"no {prefix!r} line within {timeout_s:.0f} s; got {seen}")


@pytest.mark.parametrize("delay,wait_for,sig", [
    ("120", "child", signal.SIGINT),  # Ctrl-C while the engine is still loading (it would take 120 s)
    ("0.2", "ready", signal.SIGTERM),  # SIGTERM once it serves
])
def test_managed_server_stops_its_child_on_signals(tmp_path, delay, wait_for, sig):
    """Waits on real conditions (the parent reports it is waiting for the child / the child answers), with
    generous bounds for a loaded machine; none of them is a speed claim."""
    script = tmp_path / "serve.py"
    script.write_text(SERVER_SCRIPT)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port), delay], stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    child = None
    try:
        seen = _wait_for_line(lines, "child", 120)
        child = int(seen[-1].split()[1])
        if wait_for != "child":
            _wait_for_line(lines, wait_for, 120)
        assert _alive(child)
        proc.send_signal(sig)
        proc.wait(timeout=60)  # stop() gives the child 20 s to exit on SIGTERM, then kills its group
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the server outlived medix"
    finally:
        proc.kill()
        proc.wait()
        if child and _alive(child):
            os.killpg(child, signal.SIGKILL)


def test_managed_server_refuses_a_busy_port():
    with JudgeStub() as foreign:
        command = [sys.executable, "-m", "medix.testing.stub_server", "--port", str(foreign.port)]
        server = ManagedServer(command, foreign.url, startup_timeout_s=30)
        with pytest.raises(MedixError, match=f"port {foreign.port} on 127.0.0.1 is already in use"):
            server.start()
    assert server.process is None  # nothing was started
