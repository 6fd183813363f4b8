"""Secrets out of every text medix writes: API keys, bearer tokens and the credentials inside URLs.

    redact("key sk-or-v1-abc... rejected", secrets=("my-key",))  → "key [redacted] rejected"
    display_url("http://user:pass@host:8000/v1")                  → "http://host:8000/v1"
    url_secrets(["http://user:pass@host/v1"])                     → ("pass",)

`ChatClient` passes every text that comes back from a server (replies and error bodies) through `redact`
with the configured key and the URLs' passwords, so an echoing server cannot get a key into records,
reports or submissions; `display_url` is how a server is named anywhere (errors, logs, judge identities).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# Bearer tokens and OpenAI / OpenRouter style keys, wherever a server echoes them.
_SECRET = re.compile(r"(?i)(\bbearer\s+)[\w.~+/=-]{8,}|\bsk-[\w-]{8,}")
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
    """The URL without its user:password@ part: how a server is named in any message or record."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_secrets(urls: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The passwords inside `urls` (user:password@host), to redact wherever they might be echoed."""
    found = []
    for url in urls:
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            found.append(password)
    return tuple(found)
