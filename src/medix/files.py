"""Reading input files and checking output paths, with errors that name the file and line; and keeping secrets
out of every text medix writes.

    for line_no, record in iter_jsonl(path): ...      # JSONL rows (blank lines skipped)
    data = read_json(path); text = read_text(path)    # whole files
    check_output_file(out, overwrite=False, inputs=[inp])   # before any model loads
    check_writable_dir(folder); check_output_dir(folder)     # a folder output (never an existing file)
    with hold_folder(out, "medix eval run"): ...       # one run per output folder; a second names the holder
    cache_dir()                                        # MEDIX_CACHE (default ~/.cache/medix)

Every reader turns the two ways a file can be unreadable as text into a `MedixError` naming the file and
line (a JSONL line is a "row", as in every other data error): bytes that are not UTF-8
(`UnicodeDecodeError`) and text that is not JSON (`JSONDecodeError`).

Secrets: API keys, bearer tokens and the credentials inside URLs never reach a record, report, log or message:

    redact("key sk-or-v1-abc... rejected", secrets=("my-key",))  → "key [redacted] rejected"
    display_url("http://user:pass@host:8000/v1")                  → "http://host:8000/v1"
    url_secrets(["http://user:pass@host/v1"])                     → ("pass",)

`ChatClient` passes every text that comes back from a server (replies and error bodies) through `redact`
with the configured key and the URLs' passwords, so an echoing server cannot get a key into records,
reports or submissions; `display_url` is how a server is named anywhere (errors, logs, judge identities).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from medix.errors import MedixError, where


def cache_dir() -> Path:
    """Where medix keeps converted models, audits and judge caches: MEDIX_CACHE, else ~/.cache/medix."""
    return Path(os.environ.get("MEDIX_CACHE", Path.home() / ".cache" / "medix"))


def _decode(data: bytes, path: Path, first_line: int = 1, unit: str = "line") -> str:
    """UTF-8 text of `data` (which starts at line `first_line` of `path`); errors say `unit` N ("row" in JSONL)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data.count(b"\n", 0, err.start)
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise MedixError(f"{path}, {unit} {line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}); "
                         "save the file as UTF-8") from None


def read_text(path: str | Path) -> str:
    """The whole file as UTF-8 text."""
    path = Path(path)
    return _decode(path.read_bytes(), path)


def read_json(path: str | Path) -> Any:
    """A whole JSON file; a syntax error names the line."""
    path = Path(path)
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise MedixError(f"{path}, line {err.lineno}: not valid JSON ({err.msg}, column {err.colno})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed value) for each non-blank line of a JSONL file; errors name it "row N"."""
    path = Path(path)
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            line = _decode(raw, path, line_no, unit="row")
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as err:
                raise MedixError(f"{where(path, line_no)}: not valid JSON ({err.msg}, column {err.colno})") from None


def check_output_file(path: str | Path, overwrite: bool = False, inputs: tuple | list = ()) -> None:
    """Refuse an output path that cannot or must not be written, before any work starts: a directory, one of
    the `inputs`, an existing file (unless `overwrite`), or a place this process cannot create files in."""
    path = Path(path)
    if path.is_dir():
        raise MedixError(f"output {path} is a directory; give a file path, e.g. {path / 'scored.jsonl'}")
    for source in inputs:
        if Path(source).exists() and path.exists() and os.path.samefile(source, path):
            raise MedixError(f"output {path} is the input file; writing it would destroy the input. "
                             "Choose another output path")
    if path.exists() and not path.is_file():
        raise MedixError(f"output {path} is not a regular file (a device, pipe or socket); give a file path")
    if path.exists() and not overwrite:
        raise MedixError(f"output {path} already exists; pass --overwrite to replace it, or choose another path")
    check_writable_dir(path.parent, f"cannot write {path}")


def check_writable_dir(folder: str | Path, context: str | None = None) -> None:
    """MedixError unless files can be created in `folder` (or, when it does not exist yet, in the nearest
    folder above it that does, where the missing ones will be made)."""
    folder = Path(folder)
    context = context or f"cannot write to {folder}"
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise MedixError(f"{context}: {folder} is not a directory")
    try:  # a real probe: permission bits say nothing for root, a read-only mount says nothing in them
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise MedixError(f"{context}: {folder} is not writable ({err.strerror})") from None


def check_output_dir(folder: str | Path, flag: str = "--output-dir") -> None:
    """MedixError unless `folder` is (or can become) a writable folder: an existing file is refused."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise MedixError(f"{flag} {folder} is a file; give a folder (it is created when missing)")
    check_writable_dir(folder, f"{flag} {folder} cannot be written")


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


# Text that came from a server, a file or a model, made safe to print: every control character except newline
# and tab (C0, DEL, C1: escape sequences, carriage return, bell, 8-bit CSI) shown as a visible escape.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """`text` with its control characters written out (`\\x1b`), so it cannot clear the screen, move the cursor,
    hide or overwrite text, ring the bell or make a link: what every medix console prints goes through here."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """`text` with every lone surrogate (a code point UTF-8 cannot encode, e.g. a reply's broken emoji escape)
    replaced by U+FFFD, so writing it can never fail."""
    return _SURROGATE.sub("\ufffd", text)


# Secrets out of what medix writes.
# Bearer tokens, HTTP Basic credentials and OpenAI / OpenRouter style keys, wherever a server echoes them.
_SECRET = re.compile(r"(?i)(\b(?:bearer|basic)\s+)[\w.~+/=-]{8,}|\bsk-[\w-]{8,}")
# user:password@ (or user@) inside any URL in a text, e.g. an exception message that quotes one.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
PLACEHOLDER = "[redacted]"


def redact(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """`text` without the given secret values, URL credentials, or anything shaped like a bearer token or
    sk- key. Secrets shorter than 4 characters (and the SDK's "EMPTY" placeholder) are not searched for."""
    for secret in sorted(secrets, key=len, reverse=True):  # a key containing another is replaced whole
        if secret and secret != "EMPTY" and len(secret) >= 4:
            text = text.replace(secret, PLACEHOLDER)
    text = _URL_USERINFO.sub(r"\1", text)
    return _SECRET.sub(lambda m: (m.group(1) or "") + PLACEHOLDER, text)


def display_url(url: str) -> str:
    """The URL without its user:password@ part, query and fragment (where `?api_key=...` would be): how a server
    is named in any message or record."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return redact(url.split("?", 1)[0].split("#", 1)[0])
    if parts.username is None and parts.password is None and not parts.query and not parts.fragment:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


_LEADING_USERINFO = re.compile(r"^(\s*(?:[a-z][a-z0-9+.-]*://)?)[^/@\s]+@", re.I)


def without_credentials(text: str) -> str:
    """`redact(text)` that also drops a leading `user:password@` of a URL written without its scheme."""
    return redact(_LEADING_USERINFO.sub(r"\1", text))


def check_url(url: str) -> str:
    """A server URL as given (pydantic's validator for every URL field): http(s), a host, a valid port. Without a
    scheme, `user:password@host` would not even be read as credentials, so such a URL is refused."""
    text = str(url).strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 — raises ValueError on a port that is not a number or out of range
    except ValueError as err:
        raise ValueError(f"{without_credentials(display_url(text))!r} is not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{without_credentials(display_url(text))!r} is not an http(s) URL with a host; write it "
                         "in full, e.g. http://127.0.0.1:8000/v1")
    return text


def url_secrets(urls: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The passwords inside `urls` (user:password@host), and their HTTP Basic form, to redact wherever they might
    be echoed."""
    found = []
    for url in urls:
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:  # also as an HTTP Basic header carries it
            found += [password, base64.b64encode(f"{urlsplit(url).username or ''}:{password}".encode()).decode()]
    return tuple(found)
