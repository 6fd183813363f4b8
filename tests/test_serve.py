"""ManagedServer: start a real server process on loopback, wait for health, stop it cleanly."""

import signal
import sys

import pytest

from medix.config import JudgeConfig
from medix.errors import MedixError
from medix.judge import Judge, JudgeRequest
from medix.serving.process import ManagedServer
from medix.testing.stub_server import free_port


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
