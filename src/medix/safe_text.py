"""Text medix writes or prints is safe: API keys, bearer tokens and the credentials inside URLs never reach a
record, report, log or message; terminal control characters and lone surrogates are neutralised; server URLs
are checked before use.

    redact("key sk-or-v1-abc... rejected", secrets=("my-key",))  → "key [redacted] rejected"
    display_url("http://user:pass@host:8000/v1")                  → "http://host:8000/v1"
    url_secrets(["http://user:pass@host/v1"])                     → ("pass",)
    terminal_safe("\x1b[2J")                                       → "\\x1b[2J"

`ChatClient` passes every text that comes back from a server (replies and error bodies) through `redact`
with the configured key and the URLs' passwords, so an echoing server cannot get a key into records,
reports or submissions; `display_url` is how a server is named anywhere (errors, logs, judge identities).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit, urlunsplit

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
