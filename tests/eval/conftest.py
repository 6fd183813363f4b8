"""Fixtures of the eval tests: loopback servers a test scripts exactly (which item fails, what the judge says)."""

from __future__ import annotations

import pytest

from helpers.eval_data import FAIL
from helpers.servers import reply_server, user_text
from medix.testing.stub_server import policy_reply


@pytest.fixture
def failing_policy():
    """Answers "A. x" (option A, written as the task's reference is) in the MediX-R1 format, except HTTP 500
    for a question holding FAIL."""
    with reply_server(lambda body: None if FAIL in user_text(body) else policy_reply("A. x")) as server:
        yield server


@pytest.fixture
def yes_judge():
    """Calls every answer correct: YES to a binary prompt, score 1 to a prompt asking for a JSON score."""
    with reply_server(lambda body: '{"score": 1}' if '{\\"score\\"' in user_text(body) else "YES") as server:
        yield server
