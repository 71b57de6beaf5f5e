"""Process logging options against the real binary (issue 4, item 5): --log-path writes the log
lines to a file instead of stderr, --log-format takes spdlog patterns (Envoy's default included),
an unknown pattern is warned about and the default line kept; SIGUSR1 reopens the file.
"""
import os
import re
import signal
import time

from lgharness import bootstrap as bs
from lgharness.clients import curl

LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\]\[\d+\]\[(\w+)\]\[(\w+)\] (.*)$")


def wait_file(path, pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        text = open(path).read() if os.path.exists(path) else ""
        if pred(text):
            return text
        assert time.monotonic() < deadline, "timed out; %s has %r" % (path, text)
        time.sleep(0.05)


def test_log_path_and_envoy_format(start_legate, free_port, origin, tmp_path):
    log = tmp_path / "legate.log"
    lg = start_legate(bs.simple_proxy(free_port(), origin.port),
                      extra_args=["--log-path", str(log), "--log-format", "[%Y-%m-%d %T.%e][%t][%l][%n] %v"],
                      log_level="info")
    assert curl(lg.url("/ok")).status == 200
    text = wait_file(log, lambda t: "starting main dispatch loop" in t)
    lines = [l for l in text.splitlines() if l]
    assert lines and all(LINE.match(l) for l in lines), lines
    assert any(LINE.match(l).group(1) == "info" and LINE.match(l).group(2) == "main" for l in lines)

    # Rotation: SIGUSR1 reopens the path.
    os.rename(log, str(log) + ".1")
    os.kill(lg.pid, signal.SIGUSR1)
    wait_file(log, lambda t: os.path.exists(log))  # created again by the reopen


def test_unknown_log_format_warns_and_keeps_default(start_legate, free_port, origin, tmp_path):
    log = tmp_path / "legate.log"
    start_legate(bs.simple_proxy(free_port(), origin.port),
                 extra_args=["--log-path", str(log), "--log-format", "%j %v"], log_level="info")
    text = wait_file(log, lambda t: "starting main dispatch loop" in t)
    lines = [l for l in text.splitlines() if l]
    assert all(LINE.match(l) for l in lines), lines
    assert any("--log-format" in l and LINE.match(l).group(1) == "warning" for l in lines), lines
