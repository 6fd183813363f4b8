"""One holder per resource, said before anything starts: a folder (one run writes an output folder at a time),
a lock file (the review store), a TCP port (a web UI).

    with hold_folder(out, "medix eval run"): ...   # a second run on `out` names the first (pid, host, command, start)
    check_port_free("127.0.0.1", 7860)             # MedixError naming the port and the flag, before serving
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator

from medix.errors import MedixError

LOCK_NAME = ".medix.lock"


@contextlib.contextmanager
def hold_folder(folder: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (a `.medix.lock` file inside it) while the block runs; a second
    holder gets a MedixError naming the first (pid, host, command, start time)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with hold_lock(folder / LOCK_NAME, what, lambda holder: (
            f"{folder} is in use by {holder}; wait for it to finish, or use another folder "
            "(two runs writing one folder would do every item twice)")):
        yield


@contextlib.contextmanager
def hold_lock(path: Path, what: str, busy: Callable[[str], str]) -> Iterator[None]:
    """Hold an exclusive `flock` on the file `path` while the block runs, the holder (pid, host, `what`, start
    time) written in it; a second holder gets MedixError(busy(first holder)). The kernel releases the lock when
    the holder dies, however it dies: a stale file never blocks a new run."""
    import fcntl

    with path.open("a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            raise MedixError(busy(fh.read().strip() or "another process")) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} ({what}, since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()


def check_port_free(host: str, port: int, flag: str = "--port") -> None:
    """MedixError when `host:port` cannot be bound (another program listens there), before anything starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: only a listener blocks
        try:
            probe.bind((host, port))
        except OSError as err:
            raise MedixError(f"{flag} {port}: {host}:{port} is already in use ({err.strerror}); stop what "
                             f"listens there or choose another {flag}") from None
