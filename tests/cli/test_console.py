"""Text from a server cannot drive the terminal: what `medix infer`, the `reward score` table, an error line and a
log line print has its control characters written out (medix/cli/common.py's console; docs/reliability.md)."""

import json

from helpers.cli_runner import cli
from helpers.servers import reply_app
from medix.testing.stub_server import LoopbackServer

# What a hostile reply may hold: clear screen, an OSC-8 link, a carriage return over a fake success line, the
# bell, an 8-bit CSI.
HOSTILE = "\x1b[2J\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07\rOK: all requests succeeded\x07\x9b31m"


def _no_control(text: str) -> None:
    assert not any(c in text for c in "\x1b\x07\r\x9b"), repr(text[:300])


def test_infer_prints_a_hostile_reply_with_its_control_characters_written_out():
    reply = f"<OTHER><think>{HOSTILE}</think><answer>{HOSTILE}</answer>"
    with LoopbackServer(reply_app(reply)) as server:
        code, output, _ = cli("infer", "--question", "q?", "--server", server.url, "--model", "m")
    assert code == 0
    _no_control(output)
    flat = " ".join(output.split())
    assert "\\x1b[2J" in flat and "OK: all requests succeeded" in flat  # shown, harmless


def test_a_hostile_error_body_is_one_harmless_line(tmp_path):
    with LoopbackServer(reply_app(raw_json=json.dumps({"error": HOSTILE}), status=400)) as server:
        code, output, error = cli("infer", "--question", "q?", "--server", server.url, "--model", "m",
                                  "--timeout", "2")
    from medix.cli.common import console

    with console.capture() as captured:  # the one-line error of `medix` (cli.main) goes through this console
        console.print(f"error: {error}" if error else output)
    _no_control(captured.get())


def test_reward_score_table_and_log_lines_are_terminal_safe(tmp_path):
    import logging

    from medix.cli.common import SafeRichHandler, console

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"response": f"<answer>{HOSTILE}</answer>", "solution": "x"}) + "\n")
    config = tmp_path / "reward.yaml"
    with LoopbackServer(reply_app("YES")) as judge:
        config.write_text(f"judge: {{backend: openai, model: m, base_urls: ['{judge.url}'], cache: false}}\n")
        code, output, _ = cli("reward", "score", "-i", str(rows), "-o", str(tmp_path / "out.jsonl"),
                              "-c", str(config), "--show", "5")
    assert code == 0
    _no_control(output)
    record = logging.LogRecord("medix", logging.WARNING, __file__, 1, f"server said {HOSTILE}", None, None)
    with console.capture() as captured:
        SafeRichHandler(console=console, show_path=False).emit(record)
    _no_control(captured.get())
