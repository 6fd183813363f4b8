"""Helpers the tests import (`from helpers.servers import reply_server`): tests/ is on pytest's `pythonpath`.

Fixtures live in conftest.py files; plain functions and constants that several test modules share live here.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Real benchmark mirrors, read by tests only (the product never depends on them): ../shared/benchmarks next to
# the repo, or $MEDIX_BENCHMARKS.
BENCHMARKS = Path(os.environ.get("MEDIX_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
# Credentials as they leak: an API key of the `sk-` shape, and the password of a `user:password@` server URL.
SECRET = "sk-or-v1-0123456789abcdef0123456789abcdef"
PASSWORD = "hunter2-pw"
